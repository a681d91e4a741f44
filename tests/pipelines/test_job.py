"""pipelines.job: flags become a checked Job; each bad setting is one ValueError naming it."""
from __future__ import annotations

import pytest

from pipelines import synthesize
from pipelines.job import Job, is_local_runner, make_job


def _args(tmp_path, predictor, *flags):
    args, _ = synthesize.parse_known_args(["--input", str(tmp_path), "--predictor", str(predictor), *flags])
    return args


def test_make_job_keeps_the_checked_settings(tmp_path, colour_predictor):
    job = make_job(_args(tmp_path, colour_predictor, "--styles", "dense,narrative,dense", "--shard_size", "7"),
                   "DirectRunner")
    assert isinstance(job, Job)
    assert job.styles == ("dense", "narrative") and job.shard_size == 7 and job.device == "cpu"


@pytest.mark.parametrize("flags, message", [
    (["--device", "tpu9"], "--device"),
    (["--styles", "sonnet"], "--styles"),
    (["--prefix", "a/b"], "prefix"),
    (["--min_images", "5", "--max_images", "2"], "max_images"),
])
def test_bad_settings_name_themselves(tmp_path, colour_predictor, flags, message):
    with pytest.raises(ValueError, match=message):
        make_job(_args(tmp_path, colour_predictor, *flags), None)


def test_remote_runs_check_device_syntax_but_not_local_files(tmp_path):
    args, _ = synthesize.parse_known_args(["--input", str(tmp_path), "--predictor", "/opt/predictor",
                                           "--device", "cuda:0"])
    job = make_job(args, "DataflowRunner")  # the workers hold the GPU and the predictor, not this machine
    assert job.device == "cuda:0" and job.predictor == "/opt/predictor"
    with pytest.raises(ValueError, match="--predictor"):
        make_job(args, "DirectRunner")


def test_is_local_runner():
    assert is_local_runner(None) and is_local_runner("DirectRunner") and is_local_runner("direct")
    assert not is_local_runner("DataflowRunner")
