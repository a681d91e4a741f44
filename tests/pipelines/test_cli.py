"""The job's command line: --help, one-line errors for bad flags, and the Dataflow graph translated offline."""
from __future__ import annotations

import importlib.util

import pytest

from pipelines import synthesize
from spac.cli.support import run_main

FLAGS = ["--input", "--output", "--predictor", "--device", "--torch_threads", "--batch_size", "--shard_size", "--prefix", "--seed",
         "--max_unknown", "--gender_vote", "--min_images", "--max_images", "--styles", "--overwrite"]


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        synthesize.parse_known_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert all(flag in text for flag in FLAGS)
    assert "--batch-size" in text and "--runner" in text


def test_hyphenated_and_beam_flags_are_parsed():
    args, rest = synthesize.parse_known_args(["--batch-size", "8", "--shard_size=3", "--runner=DirectRunner"])
    assert (args.batch_size, args.shard_size, rest) == (8, 3, ["--runner=DirectRunner"])


@pytest.mark.parametrize("flags, message", [
    (["--input", "/no/such/folder"], "does not exist"),
    (["--min_images", "5", "--max_images", "2"], "max_images"),
    (["--gender_vote", "1.5"], "gender_vote"),
    (["--batch_size", "0"], "--batch_size"),
    (["--torch_threads", "0"], "--torch_threads"),
    (["--predictor", "/no/such/model"], "--predictor"),
    (["--styles", "sonnet"], "unknown style 'sonnet'"),
    (["--device", "tpu9"], "--device"),
    (["--prefix", "bad/prefix"], "prefix"),
])
def test_bad_input_gives_one_line_error(tmp_path, capsys, flags, message, colour_predictor):
    argv = ["--runner=DirectRunner", "--input", str(tmp_path), "--predictor", str(colour_predictor), *flags]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and err.startswith(synthesize.PROG)


def test_bad_manifest_row_gives_one_line_error_before_writing(tmp_path, capsys, colour_predictor):
    manifest = tmp_path / "list.jsonl"
    manifest.write_text('{"path": "a.jpg"}\n')
    argv = ["--runner=DirectRunner", "--input", str(manifest), "--output", str(tmp_path / "out"),
            "--predictor", str(colour_predictor)]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "row 1" in err and err.startswith(synthesize.PROG)
    assert not (tmp_path / "out").exists()


def _dataflow_unavailable() -> str | None:
    for module in ("google.cloud.storage", "apitools.base.py", "apache_beam.runners.dataflow.dataflow_runner"):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ModuleNotFoundError:
            return module
    return None


@pytest.mark.skipif(_dataflow_unavailable() is not None,
                    reason="Dataflow graph check needs the 'dataflow' extra (apache-beam[gcp]); "
                           f"missing {_dataflow_unavailable()}")
def test_dataflow_dry_run_translates_the_graph(input_folder, colour_predictor, tmp_path):
    argv = ["--runner=DataflowRunner", "--dry_run=True", "--project=any", "--region=us-central1",
            "--temp_location=gs://any/tmp", "--input", str(input_folder), "--output", "gs://any/out",
            "--predictor", str(colour_predictor)]
    result = synthesize.run(argv, save_main_session=False)
    assert result.state == "DONE"
    assert synthesize.counters(result) == {}
