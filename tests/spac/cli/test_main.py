"""The `spac` dispatcher: usage, unknown commands, --debug, and every command module it names."""

import importlib
import os
import subprocess
import sys

import pytest

from spac.cli.main import COMMANDS, main


def test_every_command_module_exposes_cli_main():
    for module, _ in COMMANDS.values():
        assert callable(importlib.import_module(module).cli_main)


def test_usage_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main([]) == 2


def test_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["nonsense"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"spac: error: unknown command 'nonsense' (choose from {', '.join(COMMANDS)})"
    ]


def test_a_command_runs_through_run_main(tmp_path, capsys):
    assert main(["render", str(tmp_path / "out"), "--identities", "0", "--images-per-identity", "1"]) == 2
    assert capsys.readouterr().err.startswith("spac render: error: argument --identities:")
    assert main(["render", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: spac render")


@pytest.mark.parametrize("command", ["--help", "caption --help", "shards --help", "render --help"])
def test_help_does_not_import_torch(command):
    """torch costs ~1.5 s to import: a command's --help (and the dispatcher) must not pay for it."""
    code = (
        "import sys\nfrom spac.cli.main import main\n"
        f"try:\n    main({command.split()!r})\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'webdataset', 'apache_beam') if m in sys.modules)\n"
        "print('HEAVY', heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY []"


def test_report_help_and_the_corpus_format_do_not_import_torch():
    code = (
        "import sys\nimport shards.reader, shards.writer, shards.verify, spac.cli.report\n"
        "print('HEAVY', sorted(m for m in ('torch', 'webdataset') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY []"


def _spac(code: str, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `spac ARGV` in a fresh interpreter after ``code`` (which may patch what the command calls)."""
    script = f"import sys\n{code}\nfrom spac.cli.main import main\nsys.exit(main({list(argv)!r}))"
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SPAC_DEBUG": "", **(env or {})},
    )


_BROKEN_RENDER = (
    "import spac.cli.render\n"
    "def broken(*args, **kwargs):\n"
    "    raise ValueError('operands could not be broadcast together')\n"
    "spac.cli.render.render_dataset = broken"
)


def test_a_bug_inside_a_command_shows_its_traceback_and_bad_input_stays_one_line(tmp_path):
    good = ["render", str(tmp_path / "out"), "--identities", "1", "--images-per-identity", "1", "--quiet"]
    bug = _spac(_BROKEN_RENDER, *good)
    assert bug.returncode not in (0, 2)
    assert "Traceback (most recent call last)" in bug.stderr
    assert bug.stderr.strip().splitlines()[-1] == "ValueError: operands could not be broadcast together"
    (tmp_path / "file").write_text("x")
    bad = _spac(_BROKEN_RENDER, "render", str(tmp_path / "file"), "--identities", "1", "--images-per-identity", "1")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [f"spac render: error: {tmp_path / 'file'} exists and is not a folder"]


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_debug_shows_the_traceback_of_bad_input_too(tmp_path, how):
    (tmp_path / "file").write_text("x")
    argv = ["render", str(tmp_path / "file"), "--identities", "1", "--images-per-identity", "1"]
    done = _spac("", "--debug", *argv) if how == "flag" else _spac("", *argv, env={"SPAC_DEBUG": "1"})
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("common.cli.CliError: ")


def test_usage_documents_debug(capsys):
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out
