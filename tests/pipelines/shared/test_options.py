"""pipelines.shared.options: the shared flags defined once, each job's parser holding its own flags only, whatever
else is loaded, in any import order; and pipelines.shared.launch hands Beam only Beam's flags."""

from __future__ import annotations

import subprocess
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from common.errors import InputError
from pipelines import import_corpus, synthesize
from pipelines.shared import launch
from pipelines.shared.options import checked_prefix

SHARED = ["--input", "--output", "--overwrite", "--shard_size", "--prefix", "--max_pixels", "--max_file_bytes"]


def _help(parse_known_args, capsys) -> str:
    with pytest.raises(SystemExit):
        parse_known_args(["--help"])
    return capsys.readouterr().out


def test_each_job_has_the_shared_flags_and_only_its_own(capsys):
    synthesis, importing = _help(synthesize.parse_known_args, capsys), _help(import_corpus.parse_known_args, capsys)
    assert all(flag in synthesis and flag in importing for flag in SHARED)
    assert "--predictor" in synthesis and "--predictor" not in importing
    assert "--split" in importing and "--split" not in synthesis
    _, rest = synthesize.parse_known_args(["--format", "synthpedes"])
    assert rest == ["--format", "synthpedes"]  # not a synthesis flag: left over, then refused as unknown


def test_each_job_has_its_own_defaults_of_the_shared_flags():
    synthesis, _ = synthesize.parse_known_args([])
    importing, _ = import_corpus.parse_known_args([])
    assert (synthesis.output, synthesis.prefix) == ("data/SYNTH-PEDES", "synthpedes")
    assert (importing.input, importing.output, importing.prefix) == (None, None, None)
    assert synthesis.shard_size == importing.shard_size == 10_000


_LOAD_BOTH = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from apache_beam.options.pipeline_options import PipelineOptions
from pipelines import import_corpus, synthesize
names = PipelineOptions(["--shard_size", "3"]).get_all_options()  # Beam's one parser over every options class
assert names["shard_size"] == 3, names["shard_size"]
assert synthesize.parse_known_args(["--seed", "2"])[0].seed == 2
assert import_corpus.parse_known_args(["--split", "test"])[0].split == "test"
print("ok")
"""


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(("pipelines.synthesize", "pipelines.import_corpus"), marks=pytest.mark.slow),
        ("pipelines.import_corpus", "pipelines.synthesize"),
    ],
)
def test_both_jobs_load_together_in_either_order(order):
    done = subprocess.run([sys.executable, "-c", _LOAD_BOTH, *order], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_beam_gets_only_its_own_flags():
    argv = ["--input", "/in", "--shard_size", "3", "--runner=DirectRunner", "--direct_num_workers=2"]
    args, options = launch.split_args(synthesize.parse_known_args, argv, save_main_session=False)
    assert (args.input, args.shard_size) == ("/in", 3)
    given = options.get_all_options(drop_default=True)
    assert given == {"runner": "DirectRunner", "direct_num_workers": 2, "save_main_session": False}
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert isinstance(options, PipelineOptions)


def test_a_flag_neither_the_jobs_nor_beams_is_an_input_error():
    with pytest.raises(InputError, match="unknown flag --split"):
        launch.split_args(synthesize.parse_known_args, ["--split", "test"], save_main_session=False)


def test_a_bad_prefix_is_an_input_error_naming_the_flag():
    assert checked_prefix("lup-nl") == "lup-nl"
    with pytest.raises(InputError, match="^--prefix: prefix 'a/b'"):
        checked_prefix("a/b")
