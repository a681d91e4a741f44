"""Flags of the synthesis job, as a Beam ``PipelineOptions`` subclass (Beam style: ``--shard_size``).

Every threshold of the paper's corpus filters is a flag; the defaults are the paper's values.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.inputs import INPUT_FORMATS
from shards.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from common.cli import positive_int, unit_float

DEFAULT_INPUT = str(Path(__file__).resolve().parent.parent / "spac" / "assets" / "samples")
DEFAULT_OUTPUT = "data/SYNTH-PEDES"


class SynthesizeOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("synthesis")
        group.add_argument(
            "--input", default=DEFAULT_INPUT,
            help="images to caption: a folder laid out <root>/[<part>/]<identity>/<image>, a glob over such "
                 "files, a manifest (.csv, .jsonl or .parquet) with 'path' and 'identity' columns, WebDataset tar "
                 "shards (a folder of .tar files, a .tar, or a brace pattern such as shards/{00000..00041}.tar, "
                 "e.g. img2dataset's output; see --identity_field, --identity_pattern) or a LUPerson-NL folder "
                 "(<country>/<city>/<video>/<pid>_<frame>_<obj>.jpg); any Beam filesystem (local, gs://, s3://). "
                 "Default: the bundled sample images")
        group.add_argument(
            "--input_format", "--input-format", dest="input_format", default="auto",
            choices=INPUT_FORMATS,
            help="how to read --input (default: %(default)s: a .tar or brace pattern is webdataset, a "
                 ".csv/.jsonl/.parquet file a manifest, a local folder holding .tar files webdataset, a local "
                 "folder laid out like LUPerson-NL luperson_nl, anything else folder; a remote folder of shards "
                 "or of LUPerson-NL images needs the format named). luperson_nl: the identity is the video "
                 "folder plus the file name's pseudo label <pid>, so labels of two videos never collide")
        group.add_argument(
            "--identity_field", "--identity-field", dest="identity_field", default=None, metavar="NAME",
            help="webdataset input: the field of each sample's json member that holds its identity (a string "
                 "or an integer), e.g. a column img2dataset copied with --save_additional_columns")
        group.add_argument(
            "--identity_pattern", "--identity-pattern", dest="identity_pattern", default=None, metavar="REGEX",
            help="webdataset input: a regular expression with one group, searched in each sample's __key__, "
                 "whose match is its identity, e.g. '^(\\d+)_' for keys like 0042_0007. A sample whose "
                 "identity cannot be told (or without an image member) is a dead letter")
        group.add_argument(
            "--limit", type=positive_int, default=None, metavar="N",
            help="run the job on the first N images only: those with the N smallest corpus keys, whatever the "
                 "listing order (a quick trial run; images past it are left out, not dead-lettered). Recorded "
                 "in job.json. Default: every image")
        group.add_argument(
            "--output", default=DEFAULT_OUTPUT,
            help="corpus folder (local path or fsspec URL) for job.json, the shards, manifest.json, "
                 "synthpedes_dataset.json, deadletter.jsonl and filter_report.json (default: %(default)s, relative "
                 "to the working folder). job.json records every setting that changes the corpus (input, predictor "
                 "files, --shard_size, --prefix, --seed, filter thresholds, --styles, package and template "
                 "versions; not runner, worker, thread, device, batch or model-sharing flags): a rerun with the "
                 "same settings resumes, skipping complete shards; with other settings it stops with an error naming them "
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
                           help="images per inference batch (default: %(default)s): the one batch shape the model "
                                "sees, smaller batches are zero-padded to it so a prediction never depends on "
                                "how the runner batched; on a GPU, 128-256")
        group.add_argument("--max_batch_size", "--max-batch-size", dest="max_batch_size", type=positive_int,
                           default=None,
                           help="most images RunInference hands the model in one call (Beam's max_batch_size), at "
                                "least --batch_size; a larger call is predicted in --batch_size chunks. Bigger calls "
                                "mean fewer round trips to a shared model (--share_model). Default: --batch_size")
        group.add_argument("--share_model", "--share-model", dest="share_model", action="store_true",
                           help="load one model per worker machine, shared by all its SDK processes (Beam's "
                                "large_model), instead of one per process (Dataflow runs one per vCPU): one copy in "
                                "GPU memory. Decoding of the corpus JPEGs then runs in the model's process too")
        group.add_argument("--model_copies", "--model-copies", dest="model_copies", type=positive_int, default=None,
                           help="load exactly this many shared copies of the model per worker machine (Beam's "
                                "model_copies; implies --share_model), e.g. 2 to keep one GPU busy while the other "
                                "copy decodes. Default: one per process, or one with --share_model")
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
        group.add_argument("--identity_cleaning", "--identity-cleaning", dest="identity_cleaning",
                           choices=("on", "off"), default="off",
                           help="clean noisy identities (tracklet labels such as LUPerson-NL's) before the identity "
                                "filters: drop images far from their identity's centre and merge identities whose "
                                "centres are near, on the predictor's pooled features (default: %(default)s)")
        group.add_argument("--outlier_similarity", "--outlier-similarity", dest="outlier_similarity", type=float,
                           default=0.45, help="with --identity_cleaning on: drop an image whose cosine to its "
                                              "identity's centre is below this (default: %(default)s, measured on "
                                              "the demo predictor; re-measure for another)")
        group.add_argument("--merge_similarity", "--merge-similarity", dest="merge_similarity", type=float,
                           default=0.8, help="with --identity_cleaning on: merge identities whose centres' cosine "
                                             "is at least this (default: %(default)s)")
        group.add_argument("--lsh_tables", "--lsh-tables", dest="lsh_tables", type=positive_int, default=16,
                           help="with --identity_cleaning on: LSH tables for finding near identity centres "
                                "(default: %(default)s)")
        group.add_argument("--lsh_bits", "--lsh-bits", dest="lsh_bits", type=positive_int, default=8,
                           help="with --identity_cleaning on: bits per LSH signature; a bucket holds about "
                                "identities / 2^bits centres, so raise it (and --lsh_tables) for larger corpora "
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
