"""pipelines.synthesis.options: every flag documented, Beam's and hyphenated spellings parsed, bad values refused."""

from __future__ import annotations

import pytest

from common.cli import run_main
from pipelines import synthesize

FLAGS = [
    "--input",
    "--output",
    "--predictor",
    "--device",
    "--torch_threads",
    "--batch_size",
    "--shard_size",
    "--prefix",
    "--seed",
    "--max_unknown",
    "--gender_vote",
    "--min_images",
    "--max_images",
    "--styles",
    "--overwrite",
    "--max_pixels",
    "--max_file_bytes",
    "--sentences",
    "--max_batch_size",
    "--share_model",
    "--model_copies",
]


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


def test_gpu_worker_flags_are_parsed():
    args, _ = synthesize.parse_known_args(["--max-batch-size", "512", "--share_model", "--model_copies=2"])
    assert (args.max_batch_size, args.share_model, args.model_copies) == (512, True, 2)
    defaults, _ = synthesize.parse_known_args([])
    assert (defaults.max_batch_size, defaults.share_model, defaults.model_copies) == (None, False, None)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--batch_size", "0"),
        ("--shard_size", "-3"),
        ("--gender_vote", "1.5"),
        ("--max_unknown", "two"),
        ("--torch_threads", "0"),
        ("--max_batch_size", "0"),
        ("--model_copies", "-1"),
    ],
)
def test_bad_values_are_refused_at_parse_time(capsys, flag, value):
    assert run_main(synthesize.PROG, synthesize.parse_known_args, [flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and flag in err


def test_a_misspelled_flag_is_an_error_but_beams_own_flags_are_not():
    from pipelines.shared.options import unknown_flags

    assert unknown_flags(["--shard_sizee", "5", "--runner=DirectRunner"]) == ["--shard_sizee"]
    assert (
        unknown_flags(
            [
                "--runner=DataflowRunner",
                "--project",
                "p",
                "--region=us-central1",
                "--dry_run=True",
                "--experiments=use_runner_v2",
                "--direct_num_workers=2",
                "--temp_location=gs://b/t",
                "--dataflow_service_options=worker_accelerator=type:t4;count:1",
            ]
        )
        == []
    )


def test_the_job_refuses_a_misspelled_flag_in_one_line(tmp_path, capsys):
    argv = ["--runner=DirectRunner", "--input", str(tmp_path), "--output", str(tmp_path / "out"), "--shard_sizee", "5"]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"{synthesize.PROG}: error: unknown flag --shard_sizee (neither this job's nor Beam's; see --help)"
    assert not (tmp_path / "out").exists()


def test_another_jobs_flags_are_unknown_to_this_job():
    import pipelines.importing.options  # noqa: F401  (loads ImportOptions into this process)
    from pipelines.shared.options import unknown_flags

    assert unknown_flags(["--format", "synthpedes", "--runner=DirectRunner"]) == ["--format"]
