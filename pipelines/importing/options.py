"""Flags of the import job (``python -m pipelines.import_corpus``), as a Beam ``PipelineOptions`` subclass.

The flags every corpus job has (``--input``, ``--output``, ``--shard_size``, ...) are
:class:`pipelines.shared.options.CorpusJobOptions`; this class adds the import job's own. ``--input`` and
``--output`` have no default here: the job's checks name a missing one.
"""

from __future__ import annotations

import argparse

from common.cli import OneLineArgumentParser
from pipelines.shared.options import CorpusJobOptions, job_parser

FORMATS = ("synthpedes", "cuhk-pedes", "icfg-pedes", "rstpreid")
SPLITS = ("train", "test", "val", "all")
ATTRIBUTE_MODES = ("mine", "unknown")
DESCRIPTION = (
    "Import the released SYNTH-PEDES, or a split of CUHK-PEDES, ICFG-PEDES or RSTPReid, into WebDataset shards "
    "that plip pre-trains and fine-tunes on. --input (required): the dataset to import: its JSON file "
    "(synthpedes_dataset.json, reid_raw.json, ICFG_PEDES.json, data_captions.json; .gz and .bz2 too) or the "
    "folder holding it. --output (required) also gets import_report.json. --prefix default: the format's name "
    "without dashes, e.g. cuhkpedes."
)
EPILOG = (
    "Beam's flags (--runner, --direct_running_mode, --direct_num_workers, --project, --region, "
    "--temp_location, --setup_file, --dry_run, ...) are passed to Beam. Rerunning into the same "
    "--output resumes it (complete shards are kept) when the settings in its job.json match."
)


def parser(prog: str) -> OneLineArgumentParser:
    return job_parser(ImportOptions, prog, DESCRIPTION, EPILOG)


class ImportOptions(CorpusJobOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("import")
        group.add_argument(
            "--format",
            choices=FORMATS,
            default=None,
            help="the dataset's format: synthpedes (released SYNTH-PEDES), cuhk-pedes, icfg-pedes or rstpreid; "
            "default: told from the file name, else from the keys of its first entry",
        )
        group.add_argument(
            "--images",
            default=None,
            help="the folder the entries' file paths are relative to; default: the JSON file's folder for "
            "synthpedes (Part1..Part11/...), its imgs/ subfolder for the other formats",
        )
        group.add_argument(
            "--split",
            choices=SPLITS,
            default=None,
            help="which split of cuhk-pedes, icfg-pedes or rstpreid to import (default: train; all: every "
            "entry); SYNTH-PEDES has no splits",
        )
        group.add_argument(
            "--attributes",
            choices=ATTRIBUTE_MODES,
            default=None,
            help="attributes of cuhk-pedes, icfg-pedes or rstpreid images: mine (from their captions with "
            "SPAC's label miner; the default) or unknown; SYNTH-PEDES keeps its released attributes",
        )
