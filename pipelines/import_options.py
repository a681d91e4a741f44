"""Flags of the import job (``python -m pipelines.import_corpus``), as a Beam ``PipelineOptions`` subclass.

Beam parses the flags of every loaded ``PipelineOptions`` subclass with one parser, which refuses an
option string defined twice. The synthesis job defines ``--input``, ``--output`` and others with the same
names, so this class adds only the option strings not yet on the parser, and this module imports
:mod:`pipelines.options` first so the synthesis flags are always added before these. Our own parser
(``parse_known_args`` in the entry point) gets all of them. None is ``required=True`` for the same
reason (Beam's parser would demand it of the synthesis job too): the job's checks name a missing one.
"""
from __future__ import annotations

import argparse

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.options import SynthesizeOptions  # noqa: F401  (defined first: see the module docstring)
from shards.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from common.cli import positive_int

FORMATS = ("synthpedes", "cuhk-pedes", "icfg-pedes", "rstpreid")
SPLITS = ("train", "test", "val", "all")
ATTRIBUTE_MODES = ("mine", "unknown")


def _add_new(group: argparse._ArgumentGroup, *names: str, **kwargs) -> None:
    if not any(name in group._option_string_actions for name in names):  # noqa: SLF001 (argparse's own table)
        group.add_argument(*names, **kwargs)


class ImportOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("import")
        _add_new(group, "--input", default=None,
                 help="(required) the dataset to import: its JSON file (synthpedes_dataset.json, reid_raw.json, ICFG_PEDES.json, "
                      "data_captions.json; .gz and .bz2 too) or the folder holding it; any Beam filesystem "
                      "(local, gs://, s3://)")
        _add_new(group, "--format", choices=FORMATS, default=None,
                 help="the dataset's format: synthpedes (released SYNTH-PEDES), cuhk-pedes, icfg-pedes or rstpreid; "
                      "default: told from the file name, else from the keys of its first entry")
        _add_new(group, "--images", default=None,
                 help="the folder the entries' file paths are relative to; default: the JSON file's folder for "
                      "synthpedes (Part1..Part11/...), its imgs/ subfolder for the other formats")
        _add_new(group, "--output", default=None,
                 help="(required) corpus folder (local path or fsspec URL) for job.json, the shards, manifest.json, "
                      "deadletter.jsonl and import_report.json. job.json records every setting that changes the "
                      "corpus: a rerun with the same settings resumes, skipping complete shards; with other "
                      "settings it stops with an error naming them (see --overwrite)")
        _add_new(group, "--overwrite", action="store_true",
                 help="when --output holds a corpus made with other settings (or without job.json), remove that "
                      "run's own files first, and nothing else")
        _add_new(group, "--split", choices=SPLITS, default=None,
                 help="which split of cuhk-pedes, icfg-pedes or rstpreid to import (default: train; all: every "
                      "entry); SYNTH-PEDES has no splits")
        _add_new(group, "--attributes", choices=ATTRIBUTE_MODES, default=None,
                 help="attributes of cuhk-pedes, icfg-pedes or rstpreid images: mine (from their captions with "
                      "SPAC's label miner; the default) or unknown; SYNTH-PEDES keeps its released attributes")
        _add_new(group, "--shard_size", "--shard-size", dest="shard_size", type=positive_int, default=10_000,
                 help="entries per WebDataset shard, in the file's order (default: %(default)s; a shard holds "
                      "fewer when some of its entries are dead-lettered)")
        _add_new(group, "--prefix", default=None,
                 help="shard file prefix (default: the format's name without dashes, e.g. cuhkpedes)")
        _add_new(group, "--max_pixels", "--max-pixels", dest="max_pixels", type=positive_int,
                 default=DEFAULT_MAX_PIXELS,
                 help="dead-letter an image that would decode to more pixels than this (default: %(default)s)")
        _add_new(group, "--max_file_bytes", "--max-file-bytes", dest="max_file_bytes", type=positive_int,
                 default=DEFAULT_MAX_BYTES,
                 help="dead-letter an image file larger than this many bytes (default: %(default)s)")
