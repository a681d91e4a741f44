"""Flags of the synthesis job, as a Beam ``PipelineOptions`` subclass (Beam style: ``--shard_size``).

Every threshold of the paper's corpus filters is a flag; the defaults are the paper's values.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from shards.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from spac.cli.support import positive_int, unit_float

DEFAULT_INPUT = str(Path(__file__).resolve().parent.parent / "spac" / "assets" / "samples")
DEFAULT_OUTPUT = "data/SYNTH-PEDES"


class SynthesizeOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("synthesis")
        group.add_argument(
            "--input", default=DEFAULT_INPUT,
            help="images to caption: a folder laid out <root>/[<part>/]<identity>/<image>, a glob over such "
                 "files, or a manifest (.csv, .jsonl or .parquet) with 'path' and 'identity' columns; any Beam "
                 "filesystem (local, gs://, s3://). Default: the bundled sample images")
        group.add_argument(
            "--output", default=DEFAULT_OUTPUT,
            help="corpus folder (local path or fsspec URL) for job.json, the shards, manifest.json, "
                 "synthpedes_dataset.json, deadletter.jsonl and filter_report.json (default: %(default)s, relative "
                 "to the working folder). job.json records every setting that changes the corpus (input, predictor "
                 "files, --shard_size, --prefix, --seed, filter thresholds, --styles, package and template "
                 "versions; not runner, worker, thread, device or batch flags): a rerun with the same settings "
                 "resumes, skipping complete shards; with other settings it stops with an error naming them "
                 "(see --overwrite). Other files in the folder are left alone")
        group.add_argument(
            "--overwrite", action="store_true",
            help="when --output holds a corpus made with other settings (or without job.json), remove that "
                 "run's files first: its shards, manifest.json, synthpedes_dataset.json, deadletter.jsonl, "
                 "filter_report.json and job.json, and nothing else; also forces a fresh write with the same "
                 "settings")
        group.add_argument(
            "--predictor", default=None,
            help="attribute predictor directory (config.json + model.safetensors); default: the bundled demo model")
        group.add_argument("--device", default="cpu", help="torch device for inference: cpu, cuda, cuda:N or auto "
                                                           "(default: %(default)s)")
        group.add_argument("--torch_threads", "--torch-threads", dest="torch_threads", type=positive_int, default=None,
                           help="torch intra-op threads per worker process (default: torch's choice); 1 avoids "
                                "oversubscription when several worker processes share a machine's cores")
        group.add_argument("--batch_size", "--batch-size", dest="batch_size", type=positive_int, default=32,
                           help="images per inference batch (default: %(default)s)")
        group.add_argument("--shard_size", "--shard-size", dest="shard_size", type=positive_int, default=10_000,
                           help="samples per WebDataset shard (default: %(default)s)")
        group.add_argument("--prefix", default="synthpedes", help="shard file prefix (default: %(default)s)")
        group.add_argument("--seed", type=int, default=0,
                           help="seed of the caption choices and of the per-identity cap (default: %(default)s)")
        group.add_argument("--max_unknown", "--max-unknown", dest="max_unknown", type=positive_int, default=3,
                           help="drop an image with at least this many unknown attribute groups (default: %(default)s)")
        group.add_argument("--gender_vote", "--gender-vote", dest="gender_vote", type=unit_float, default=0.7,
                           help="keep an identity only when its most common gender exceeds this share of its "
                                "images; that gender is then applied to all of them (default: %(default)s)")
        group.add_argument("--min_images", "--min-images", dest="min_images", type=positive_int, default=5,
                           help="drop identities with fewer images than this after filtering (default: %(default)s)")
        group.add_argument("--max_images", "--max-images", dest="max_images", type=positive_int, default=20,
                           help="keep at most this many images per identity, chosen by sha256(key, seed) "
                                "(default: %(default)s)")
        group.add_argument("--max_pixels", "--max-pixels", dest="max_pixels", type=positive_int,
                           default=DEFAULT_MAX_PIXELS,
                           help="refuse (dead-letter) an image that would decode to more pixels than this; a large "
                                "JPEG is first decoded at a reduced scale, so only its reduced size counts "
                                "(default: %(default)s)")
        group.add_argument("--max_file_bytes", "--max-file-bytes", dest="max_file_bytes", type=positive_int,
                           default=DEFAULT_MAX_BYTES,
                           help="refuse (dead-letter) an input file larger than this many bytes, without reading "
                                "it whole (default: %(default)s)")
        group.add_argument("--styles", default=None,
                           help="comma-separated caption styles (see `spac caption --help`); default: the "
                                "captioner's default styles")
        group.add_argument("--sentences", default=None, metavar="[+]PATH",
                           help="sentence library for the third text (prompt_caption), e.g. one mined from human "
                                "captions by `spac mine-templates`, on any Beam filesystem: PATH is used in place "
                                "of the bundled templates/sentences.yaml, +PATH beside it. Read and checked once "
                                "at launch; its sha256 goes into job.json. Default: the bundled library")


def _option_classes(base: type) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        found += [sub, *_option_classes(sub)]
    return found


def unknown_flags(rest: list[str]) -> list[str]:
    """The flags in ``rest`` (what our parser left) that no Beam ``PipelineOptions`` class defines either.

    Beam itself only warns about them and runs the job, so a misspelled ``--shard_sizee 5`` would be lost.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, conflict_handler="resolve")
    for options_class in _option_classes(PipelineOptions):
        # Beam's own classes only: a flag of another of our jobs (loaded in the same process) is no flag here.
        if not options_class.__module__.startswith("pipelines."):
            options_class._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(rest)
    return [arg for arg in unknown if arg.startswith("-")]
