"""`spac render`: writes a labelled folder; a bad flag is one line and exit 2."""

import pytest

from common.cli import run_main
from spac.cli.render import build_parser, cli_main


def test_renders_the_folder_and_its_labels(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main([str(out), "--identities", "1", "--images-per-identity", "2", "--seed", "3", "--quiet"]) == 0
    assert sorted(p.name for p in (out / "00000").iterdir()) == ["000.jpg", "001.jpg"]
    assert len((out / "labels.jsonl").read_text().splitlines()) == 2
    assert capsys.readouterr().out == ""
    assert cli_main([str(out), "--identities", "1", "--images-per-identity", "1"]) == 0
    assert capsys.readouterr().out.startswith("wrote 1 images of 1 identities")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--identities", "0", "--images-per-identity", "2"], "argument --identities: must be at least 1, got 0"),
        (
            ["--identities", "1", "--images-per-identity", "x"],
            "argument --images-per-identity: expected an integer, got 'x'",
        ),
        (
            ["--identities", "1", "--images-per-identity", "1", "--hidden-fraction", "1.5"],
            "argument --hidden-fraction: must be between 0 and 1, got 1.5",
        ),
        (
            ["--identities", "1", "--images-per-identity", "1", "--quality", "96"],
            "argument --quality: must be between 1 and 95, got 96",
        ),
        (["--images-per-identity", "2"], "the following arguments are required: --identities"),
    ],
)
def test_bad_flags_give_one_line_and_exit_2(tmp_path, capsys, flags, message):
    assert run_main("spac render", cli_main, [str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err == f"spac render: error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "out").write_text("")
    argv = [str(tmp_path / "out"), "--identities", "1", "--images-per-identity", "1"]
    assert run_main("spac render", cli_main, argv) == 2
    assert capsys.readouterr().err == f"spac render: error: {tmp_path / 'out'} exists and is not a folder\n"


def test_help_explains_every_flag():
    assert all(action.help for action in build_parser()._actions)
