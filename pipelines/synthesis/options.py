"""Flags of the synthesis job, as a Beam ``PipelineOptions`` subclass (Beam style: ``--shard_size``).

The flags every corpus job has (``--input``, ``--output``, ``--shard_size``, ...) are
:class:`pipelines.shared.options.CorpusJobOptions`; this class adds the synthesis job's own and its defaults
of the shared ones. Every threshold of the paper's corpus filters is a flag; the defaults are the paper's values.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common.cli import OneLineArgumentParser, non_negative_float, positive_float, positive_int, unit_float
from pipelines.shared.options import CorpusJobOptions, job_parser
from pipelines.synthesis.inputs import INPUT_FORMATS
from shards import layout
from spac.generation.backends import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S
from spac.generation.checks import DEFAULT_MAX_WORDS, DEFAULT_MIN_WORDS
from spac.generation.server import DEFAULT_API_KEY_ENV
from spac.generation.stage import DEFAULT_MIN_CONFIDENCE, DEFAULT_TEXTS, MAX_TEXTS
from spac.generation.styled import DEFAULT_BATCH_SIZE as CAPTIONER_BATCH_SIZE
from spac.generation.styled import DEFAULT_MAX_NEW_TOKENS as CAPTIONER_MAX_TOKENS

DEFAULT_INPUT = str(Path(__file__).resolve().parents[2] / "spac" / "assets" / "samples")
DEFAULT_OUTPUT = "data/SYNTH-PEDES"
CAPTIONERS = ("template", "mllm", "spac")
DESCRIPTION = (
    "Synthesize a SYNTH-PEDES corpus: caption person images with SPAC into shards. --input: the images to "
    "caption: a folder laid out <root>/[<part>/]<identity>/<image>, a glob over such files, a manifest (.csv, "
    ".jsonl or .parquet) with 'path' and 'identity' columns, WebDataset tar shards (a folder of .tar files, a "
    ".tar, or a brace pattern such as shards/{00000..00041}.tar, e.g. img2dataset's output; see --identity_field, "
    "--identity_pattern) or a LUPerson-NL folder (<country>/<city>/<video>/<pid>_<frame>_<obj>.jpg); default: the "
    f"bundled sample images. --output (default: {DEFAULT_OUTPUT}) also gets synthpedes_dataset.json and "
    f"filter_report.json; --prefix default: {layout.DEFAULT_PREFIX}. Its job.json "
    "records the input, predictor files, --limit, --shard_size, --prefix, --seed, filter thresholds, --styles, "
    "--sentences, package and template versions, with --captioner mllm the caption model, its prompts and "
    "decoding, and with --captioner spac the captioner's files' sha256 and decoding; not runner, worker, thread, "
    "device, batch or model-sharing flags."
)
EPILOG = (
    "Beam's flags (--runner, --direct_running_mode, --direct_num_workers, --project, --region, "
    "--temp_location, --dataflow_service_options, --setup_file, --sdk_container_image, --dry_run, ...) "
    "are passed to Beam. Rerunning into the same --output resumes it (complete shards are kept) when "
    "the settings recorded in its job.json match; see --output and --overwrite."
)


def parser(prog: str) -> OneLineArgumentParser:
    return job_parser(SynthesizeOptions, prog, DESCRIPTION, EPILOG)


class SynthesizeOptions(CorpusJobOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        parser.set_defaults(input=DEFAULT_INPUT, output=DEFAULT_OUTPUT, prefix=layout.DEFAULT_PREFIX)
        group = parser.add_argument_group("synthesis")
        group.add_argument(
            "--input_format",
            "--input-format",
            dest="input_format",
            default="auto",
            choices=INPUT_FORMATS,
            help="how to read --input (default: %(default)s: a .tar or brace pattern is webdataset, a "
            ".csv/.jsonl/.parquet file a manifest, a local folder holding .tar files webdataset, a local "
            "folder laid out like LUPerson-NL luperson_nl, anything else folder; a remote folder of shards "
            "or of LUPerson-NL images needs the format named). luperson_nl: the identity is the video "
            "folder plus the file name's pseudo label <pid>, so labels of two videos never collide",
        )
        group.add_argument(
            "--identity_field",
            "--identity-field",
            dest="identity_field",
            default=None,
            metavar="NAME",
            help="webdataset input: the field of each sample's json member that holds its identity (a string "
            "or an integer), e.g. a column img2dataset copied with --save_additional_columns",
        )
        group.add_argument(
            "--identity_pattern",
            "--identity-pattern",
            dest="identity_pattern",
            default=None,
            metavar="REGEX",
            help="webdataset input: a regular expression with one group, searched in each sample's __key__, "
            "whose match is its identity, e.g. '^(\\d+)_' for keys like 0042_0007. A sample whose "
            "identity cannot be told (or without an image member) is a dead letter",
        )
        group.add_argument(
            "--limit",
            type=positive_int,
            default=None,
            metavar="N",
            help="run the job on the first N images only: those with the N smallest corpus keys, whatever the "
            "listing order (a quick trial run; images past it are left out, not dead-lettered). Recorded "
            "in job.json. Default: every image",
        )
        group.add_argument(
            "--predictor",
            default=None,
            help="attribute predictor directory (config.json + model.safetensors), or mllm: ask the --mllm_model for "
            "the attributes (JSON constrained to the schema through --mllm_server, else each value's likelihood "
            "in process); default: the bundled demo model",
        )
        group.add_argument(
            "--device",
            default="cpu",
            help="torch device for inference: cpu, cuda, cuda:N or auto (default: %(default)s)",
        )
        group.add_argument(
            "--torch_threads",
            "--torch-threads",
            dest="torch_threads",
            type=positive_int,
            default=None,
            help="torch intra-op threads per worker process (default: torch's choice); 1 avoids "
            "oversubscription when several worker processes share a machine's cores",
        )
        group.add_argument(
            "--batch_size",
            "--batch-size",
            dest="batch_size",
            type=positive_int,
            default=32,
            help="images per inference batch (default: %(default)s): the one batch shape the model "
            "sees, smaller batches are zero-padded to it so a prediction never depends on "
            "how the runner batched; on a GPU, 128-256",
        )
        group.add_argument(
            "--max_batch_size",
            "--max-batch-size",
            dest="max_batch_size",
            type=positive_int,
            default=None,
            help="most images RunInference hands the model in one call (Beam's max_batch_size), at "
            "least --batch_size; a larger call is predicted in --batch_size chunks. Bigger calls "
            "mean fewer round trips to a shared model (--share_model). Default: --batch_size",
        )
        group.add_argument(
            "--share_model",
            "--share-model",
            dest="share_model",
            action="store_true",
            help="load one model per worker machine, shared by all its SDK processes (Beam's "
            "large_model), instead of one per process (Dataflow runs one per vCPU): one copy in "
            "GPU memory. Decoding of the corpus JPEGs then runs in the model's process too",
        )
        group.add_argument(
            "--model_copies",
            "--model-copies",
            dest="model_copies",
            type=positive_int,
            default=None,
            help="load exactly this many shared copies of the model per worker machine (Beam's "
            "model_copies; implies --share_model), e.g. 2 to keep one GPU busy while the other "
            "copy decodes. Default: one per process, or one with --share_model",
        )
        group.add_argument(
            "--seed",
            type=int,
            default=0,
            help="seed of the caption choices and of the per-identity cap (default: %(default)s)",
        )
        group.add_argument(
            "--max_unknown",
            "--max-unknown",
            dest="max_unknown",
            type=positive_int,
            default=3,
            help="drop an image with at least this many unknown attribute groups (default: %(default)s)",
        )
        group.add_argument(
            "--gender_vote",
            "--gender-vote",
            dest="gender_vote",
            type=unit_float,
            default=0.7,
            help="keep an identity only when its most common gender exceeds this share of its "
            "images; that gender is then applied to all of them (default: %(default)s)",
        )
        group.add_argument(
            "--min_images",
            "--min-images",
            dest="min_images",
            type=positive_int,
            default=5,
            help="drop identities with fewer images than this after filtering (default: %(default)s)",
        )
        group.add_argument(
            "--max_images",
            "--max-images",
            dest="max_images",
            type=positive_int,
            default=20,
            help="keep at most this many images per identity, chosen by sha256(key, seed) (default: %(default)s)",
        )
        group.add_argument(
            "--identity_cleaning",
            "--identity-cleaning",
            dest="identity_cleaning",
            choices=("on", "off"),
            default="off",
            help="clean noisy identities (tracklet labels such as LUPerson-NL's) before the identity "
            "filters: drop images far from their identity's centre and merge identities whose "
            "centres are near, on the predictor's pooled features (default: %(default)s)",
        )
        group.add_argument(
            "--outlier_similarity",
            "--outlier-similarity",
            dest="outlier_similarity",
            type=float,
            default=0.45,
            help="with --identity_cleaning on: drop an image whose cosine to its "
            "identity's centre is below this (default: %(default)s, measured on "
            "the demo predictor; re-measure for another)",
        )
        group.add_argument(
            "--merge_similarity",
            "--merge-similarity",
            dest="merge_similarity",
            type=float,
            default=0.8,
            help="with --identity_cleaning on: merge identities whose centres' cosine "
            "is at least this (default: %(default)s)",
        )
        group.add_argument(
            "--lsh_tables",
            "--lsh-tables",
            dest="lsh_tables",
            type=positive_int,
            default=16,
            help="with --identity_cleaning on: LSH tables for finding near identity centres (default: %(default)s)",
        )
        group.add_argument(
            "--lsh_bits",
            "--lsh-bits",
            dest="lsh_bits",
            type=positive_int,
            default=8,
            help="with --identity_cleaning on: bits per LSH signature; a bucket holds about "
            "identities / 2^bits centres, so raise it (and --lsh_tables) for larger corpora "
            "(default: %(default)s)",
        )
        group.add_argument(
            "--styles",
            default=None,
            help="comma-separated caption styles (see `spac caption --help`); default: the captioner's default styles",
        )
        group.add_argument(
            "--sentences",
            default=None,
            metavar="[+]PATH",
            help="sentence library for the third text (prompt_caption), e.g. one mined from human "
            "captions by `spac mine-templates`, on any Beam filesystem: PATH is used in place "
            "of the bundled templates/sentences.yaml, +PATH beside it. Read and checked once "
            "at launch; its sha256 goes into job.json. Default: the bundled library",
        )
        _add_caption_model_args(parser.add_argument_group("caption model (--captioner mllm or spac, --predictor mllm)"))


def _add_caption_model_args(group: argparse._ArgumentGroup) -> None:
    """--captioner and the --mllm_* flags; an --mllm_* flag left out is None, so the job can tell one given
    without --captioner mllm (its default is applied by pipelines.synthesis.job)."""
    group.add_argument(
        "--captioner",
        choices=CAPTIONERS,
        default="template",
        help="who writes the captions: template (SPAC's style modules, the default), mllm (a "
        "vision-language model, grounded in the predicted attributes; every text it writes "
        "is checked, asked again once, else replaced by the template caption; the library "
        "sentence stays the third text) or spac (SPAC's neural captioner, `spac train-captioner`: "
        "one text in each of its two styles, each checked as mllm's are, else replaced by the "
        "template caption of its slot). mllm needs --mllm_model, spac --captioner_model",
    )
    group.add_argument(
        "--captioner_model",
        "--captioner-model",
        dest="captioner_model",
        default=None,
        metavar="DIR",
        help="--captioner spac: the folder `spac train-captioner` saved (weights and config), loaded in each "
        "worker on --device (shared per worker with --share_model); checked at launch, its files' sha256 go "
        "into job.json",
    )
    group.add_argument(
        "--captioner_batch_size",
        "--captioner-batch-size",
        dest="captioner_batch_size",
        type=positive_int,
        default=None,
        help="--captioner spac: images per generate call, the one batch shape the captioner sees (a short "
        f"batch is padded, so a text never depends on the runner's batching; default: {CAPTIONER_BATCH_SIZE})",
    )
    group.add_argument(
        "--captioner_temperature",
        "--captioner-temperature",
        dest="captioner_temperature",
        type=non_negative_float,
        default=None,
        help="--captioner spac: sampling temperature; 0 is greedy decoding (default: 0)",
    )
    group.add_argument(
        "--captioner_max_tokens",
        "--captioner-max-tokens",
        dest="captioner_max_tokens",
        type=positive_int,
        default=None,
        help="--captioner spac: most tokens a text may have; a longer one is cut there, and then usually "
        f"rejected by the checks (default: {CAPTIONER_MAX_TOKENS})",
    )
    group.add_argument(
        "--captioner_seed",
        "--captioner-seed",
        dest="captioner_seed",
        type=int,
        default=None,
        help="--captioner spac: sampling seed (with each image's key), with --captioner_temperature above 0 "
        "(default: 0)",
    )
    group.add_argument(
        "--mllm_model",
        "--mllm-model",
        dest="mllm_model",
        default=None,
        metavar="NAME_OR_PATH",
        help="the caption model: the model name the server serves (with --mllm_server), else a hub "
        "name or local folder loaded in each worker (transformers' AutoModelForImageTextToText, "
        "on --device, shared per worker with --share_model)",
    )
    group.add_argument(
        "--mllm_server",
        "--mllm-server",
        dest="mllm_server",
        default=None,
        metavar="URL",
        help="base URL of an OpenAI-compatible chat-completions server (vLLM, SGLang, transformers "
        "serve, TGI, Ollama), e.g. http://HOST:8000/v1; the launcher must reach it (GET "
        "/models) or the job stops before any work",
    )
    group.add_argument(
        "--mllm_texts",
        "--mllm-texts",
        dest="mllm_texts",
        type=positive_int,
        default=None,
        help=f"generated texts per image, 1-{MAX_TEXTS} (default: {DEFAULT_TEXTS})",
    )
    group.add_argument(
        "--mllm_api_key_env",
        "--mllm-api-key-env",
        dest="mllm_api_key_env",
        default=None,
        metavar="NAME",
        help="environment variable holding the server's API key, sent as a bearer "
        f"token (default: {DEFAULT_API_KEY_ENV}; unset: no key)",
    )
    group.add_argument(
        "--mllm_timeout",
        "--mllm-timeout",
        dest="mllm_timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="per-request timeout against the server; a request that times out "
        f"is retried with back-off (default: {DEFAULT_TIMEOUT_S:g})",
    )
    group.add_argument(
        "--mllm_concurrency",
        "--mllm-concurrency",
        dest="mllm_concurrency",
        type=positive_int,
        default=None,
        help=f"requests in flight per worker process against the server (default: {DEFAULT_CONCURRENCY})",
    )
    group.add_argument(
        "--mllm_batch_size",
        "--mllm-batch-size",
        dest="mllm_batch_size",
        type=positive_int,
        default=None,
        help="images per call of the caption-model stage (Beam's batch), and texts per "
        f"forward pass of an in-process model (default: {DEFAULT_BATCH_SIZE})",
    )
    group.add_argument(
        "--mllm_min_confidence",
        "--mllm-min-confidence",
        dest="mllm_min_confidence",
        type=unit_float,
        default=None,
        help="predicted values at or above this confidence ground the prompt and the checks "
        f"(default: {DEFAULT_MIN_CONFIDENCE:g})",
    )
    group.add_argument(
        "--mllm_min_words",
        "--mllm-min-words",
        dest="mllm_min_words",
        type=positive_int,
        default=None,
        help=f"reject a text of fewer words (default: {DEFAULT_MIN_WORDS})",
    )
    group.add_argument(
        "--mllm_max_words",
        "--mllm-max-words",
        dest="mllm_max_words",
        type=positive_int,
        default=None,
        help=f"reject a text of more words (default: {DEFAULT_MAX_WORDS})",
    )
    group.add_argument(
        "--mllm_temperature",
        "--mllm-temperature",
        dest="mllm_temperature",
        type=non_negative_float,
        default=None,
        help="sampling temperature; 0 is greedy decoding (default: 0)",
    )
    group.add_argument(
        "--mllm_seed",
        "--mllm-seed",
        dest="mllm_seed",
        type=int,
        default=None,
        help="sampling seed, with --mllm_temperature above 0 (default: 0)",
    )
