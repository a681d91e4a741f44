"""The flags both jobs share, defined once, and how a job's own parser is built from its options class.

Beam parses the flags of every loaded direct ``PipelineOptions`` subclass with one parser, which refuses an
option string defined twice. So a flag both jobs have (``--input``, ``--output``, ``--shard_size``, ...) is
defined here only, in :class:`CorpusJobOptions`; each job's class derives from it and adds its own flags,
none of them another job's, and sets its own defaults of the shared ones (``parser.set_defaults``). Whatever
is imported, no flag is defined twice. None is ``required=True``: Beam's one parser would demand it of every
job; a job's checks name a missing one.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from common.cli import OneLineArgumentParser, positive_int
from common.errors import InputError
from shards import layout
from shards.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


class CorpusJobOptions(PipelineOptions):
    """The flags of every job that writes a corpus folder; a job's defaults replace the None ones."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("corpus")
        group.add_argument(
            "--input",
            default=None,
            help="what the job reads, on any Beam filesystem (local, gs://, s3://); the description above says "
            "what it takes, and its default or that it is required",
        )
        group.add_argument(
            "--output",
            default=None,
            help="corpus folder (local path or fsspec URL) for job.json, the shards (<prefix>-%%06d.tar, "
            ".parquet, _stats.json), manifest.json, deadletter.jsonl and the job's report (the description "
            "above gives its default or says it is required; relative to the working folder). job.json "
            "records every setting "
            "that changes the corpus (the description above says which): a rerun with the same settings "
            "resumes, skipping complete shards; with other settings it stops with an error naming them "
            "(see --overwrite). Other files in the folder are left alone",
        )
        group.add_argument(
            "--overwrite",
            action="store_true",
            help="when --output holds a corpus made with other settings (or without job.json), remove that "
            "run's files first: its shards, its corpus files (manifest.json, the dataset JSON, "
            "deadletter.jsonl, its report) and job.json, and nothing else; also forces a fresh write with "
            "the same settings",
        )
        group.add_argument(
            "--shard_size",
            "--shard-size",
            dest="shard_size",
            type=positive_int,
            default=10_000,
            help="samples per WebDataset shard (default: %(default)s; a shard holds fewer when "
            "some of its samples were dead-lettered)",
        )
        group.add_argument(
            "--prefix",
            default=None,
            help="shard file prefix (letters, digits, '_' and inner '-'); the description above "
            "gives the job's default",
        )
        group.add_argument(
            "--max_pixels",
            "--max-pixels",
            dest="max_pixels",
            type=positive_int,
            default=DEFAULT_MAX_PIXELS,
            help="refuse (dead-letter) an image that would decode to more pixels than this; a large "
            "JPEG is first decoded at a reduced scale, so only its reduced size counts "
            "(default: %(default)s)",
        )
        group.add_argument(
            "--max_file_bytes",
            "--max-file-bytes",
            dest="max_file_bytes",
            type=positive_int,
            default=DEFAULT_MAX_BYTES,
            help="refuse (dead-letter) an image file larger than this many bytes, without reading "
            "it whole (default: %(default)s)",
        )


def job_parser(options: type[PipelineOptions], prog: str, description: str, epilog: str) -> OneLineArgumentParser:
    """The parser of one job: the flags of ``options`` and of its bases (shared ones first), as Beam would add
    them for that class alone."""
    parser = OneLineArgumentParser(prog=prog, allow_abbrev=False, description=description, epilog=epilog)
    for cls in reversed(options.mro()):
        if issubclass(cls, PipelineOptions) and cls is not PipelineOptions and "_add_argparse_args" in cls.__dict__:
            cls._add_argparse_args(parser)
    return parser


def checked_prefix(prefix: str) -> str:
    """``--prefix``, if shard file names can be made from it; InputError otherwise."""
    try:
        layout.shard_stem(0, prefix)
    except ValueError as exc:
        raise InputError(f"--prefix: {exc}") from None
    return prefix


def _option_classes(base: type) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        found += [sub, *_option_classes(sub)]
    return found


def unknown_flags(rest: Sequence[str]) -> list[str]:
    """The flags in ``rest`` (what a job's parser left) that no Beam ``PipelineOptions`` class defines either.

    Beam itself only warns about them and runs the job, so a misspelled ``--shard_sizee 5`` would be lost.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, conflict_handler="resolve")
    for options_class in _option_classes(PipelineOptions):
        # Beam's own classes only: a flag of one of our jobs is either the job's own (already read) or no flag
        if not options_class.__module__.startswith("pipelines."):
            options_class._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(rest))
    return [arg for arg in unknown if arg.startswith("-")]
