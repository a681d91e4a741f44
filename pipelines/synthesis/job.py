"""The synthesis job's validated settings: flags in, a frozen ``Job`` out, every bad value named in one line (an
:class:`~common.errors.InputError`); and its fingerprint, the settings that enter job.json."""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.devices import check_device_name, resolve_device
from common.errors import InputError, error_line
from pipelines.shared.options import checked_prefix
from pipelines.synthesis.inputs import InputSpec, read_image_list, resolve_input
from pipelines.synthesis.ordering import ORDER_VERSION
from shards import layout
from spac.attributes import load_schema
from spac.captioning import captioner
from spac.captioning.library import SentencesOption, parse_library_text, parse_sentences_option
from spac.corpus import filters as corpus_filters
from spac.corpus.identity_cleaning import CleaningConfig
from spac.fingerprint import method_fingerprint
from spac.predictor.model import check_predictor


@dataclass(frozen=True)
class Sentences:
    """``--sentences``: a library file read and checked at launch; its text travels with the job to the
    workers, so they need no access to the file."""

    option: SentencesOption
    text: str
    sha256: str


@dataclass(frozen=True)
class Job:
    """The validated settings the graph is built from."""

    input: InputSpec
    output: str
    predictor: str | None
    device: str
    batch_size: int
    torch_threads: int | None
    shard_size: int
    prefix: str
    seed: int
    filters: corpus_filters.FilterConfig
    styles: tuple[str, ...] | None
    max_pixels: int
    max_file_bytes: int
    sentences: Sentences | None = None
    # run-time settings of RunInference (not in job.json's fingerprint): see pipelines.synthesis.model_handler
    max_batch_size: int | None = None
    share_model: bool = False
    model_copies: int | None = None
    limit: int | None = None  # --limit: only the images with the N smallest keys (in job.json's fingerprint)
    cleaning: CleaningConfig | None = None  # --identity_cleaning on (in job.json's fingerprint)


def is_local_runner(runner: str | None) -> bool:
    """DirectRunner (the default) runs on this machine; any other runner runs on remote workers."""
    return runner is None or "direct" in runner.lower()


def _check_predictor(path: str | None, local: bool) -> str | None:
    """A local run checks the predictor here, so a bad one is one line before the job starts; a remote one
    loads it on the workers (e.g. baked into the image), which this machine may not see."""
    if local:
        try:
            check_predictor(path)
        except FileNotFoundError as exc:
            raise InputError(f"--predictor: {exc.filename}: {exc.strerror}") from None
        except ValueError as exc:
            raise InputError(f"--predictor: {exc}") from None
    return path


def _styles(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    try:
        return captioner.check_style_names([s.strip() for s in text.split(",") if s.strip()])
    except ValueError as exc:
        raise InputError(f"--styles: {exc}") from None


def read_sentences(text: str | None) -> Sentences | None:
    """--sentences [+]PATH: the file read through Beam's FileSystems and checked as a library here."""
    if text is None:
        return None
    try:
        option = parse_sentences_option(text)
        try:
            if not FileSystems.exists(option.path):
                raise InputError(f"{option.path}: no such file")
            with FileSystems.open(option.path, compression_type=CompressionTypes.UNCOMPRESSED) as stream:
                data = stream.read()
        except (BeamIOError, OSError) as exc:
            raise InputError(f"{option.path}: cannot read sentence library ({error_line(exc)})") from None
        try:
            library_text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{option.path}: cannot read sentence library: not UTF-8 text") from None
        parse_library_text(library_text, option.path, load_schema())
    except ValueError as exc:
        raise InputError(f"--sentences: {exc}") from None
    return Sentences(option, library_text, hashlib.sha256(data).hexdigest())


def _device(name: str, local: bool) -> str:
    """Checked against this machine for a local run; only its syntax for remote workers."""
    try:
        return str(resolve_device(name)) if local else check_device_name(name)
    except ValueError as exc:
        raise InputError(f"--device: {exc}") from None


def _max_batch_size(max_batch_size: int | None, batch_size: int) -> int | None:
    if max_batch_size is not None and max_batch_size < batch_size:
        raise InputError(f"--max_batch_size: {max_batch_size} is below --batch_size {batch_size} (every batch is "
                         "padded to --batch_size, so a smaller cap only pads)")
    return max_batch_size


def _cleaning(args: argparse.Namespace) -> CleaningConfig | None:
    if getattr(args, "identity_cleaning", "off") == "off":
        return None
    try:
        return CleaningConfig(outlier_similarity=args.outlier_similarity, merge_similarity=args.merge_similarity,
                              lsh_tables=args.lsh_tables, lsh_bits=args.lsh_bits)
    except ValueError as exc:
        raise InputError(f"--identity_cleaning: {exc}") from None


def make_job(args: argparse.Namespace, runner: str | None) -> Job:
    """Check every setting before the job starts; InputError names the first bad one."""
    local = is_local_runner(runner)
    spec = resolve_input(args.input, getattr(args, "input_format", "auto"), getattr(args, "identity_field", None),
                         getattr(args, "identity_pattern", None))
    if spec.manifest is not None and "://" not in spec.manifest:
        read_image_list(spec.manifest)  # a bad row stops here in one line, not as a traceback from the workers
    filters = corpus_filters.FilterConfig(args.max_unknown, args.gender_vote, args.min_images, args.max_images,
                                          args.seed)
    return Job(input=spec, output=args.output, predictor=_check_predictor(args.predictor, local),
               device=_device(args.device, local), batch_size=args.batch_size, torch_threads=args.torch_threads,
               shard_size=args.shard_size, prefix=checked_prefix(args.prefix), seed=args.seed, filters=filters,
               styles=_styles(args.styles), max_pixels=args.max_pixels, max_file_bytes=args.max_file_bytes,
               sentences=read_sentences(args.sentences),
               max_batch_size=_max_batch_size(args.max_batch_size, args.batch_size),
               share_model=args.share_model or args.model_copies is not None, model_copies=args.model_copies,
               limit=getattr(args, "limit", None), cleaning=_cleaning(args))


def fingerprint(job: Job) -> dict[str, Any]:
    """Every setting of ``job`` that changes the corpus, by option name (JSON values)."""
    return {
        "format_version": layout.FORMAT_VERSION,
        **method_fingerprint(job.predictor),  # package, schema, templates and predictor files: spac says which
        "input": {name: value for name, value in job.input._asdict().items() if value is not None},
        # only when set, so a job without --limit keeps the fingerprint it always had
        **({"limit": job.limit} if job.limit is not None else {}),
        # only when on, so a job without cleaning keeps the fingerprint it always had
        **({"identity_cleaning": dataclasses.asdict(job.cleaning)} if job.cleaning is not None else {}),
        "shard_size": job.shard_size,
        "shard_order": ORDER_VERSION,  # which sample goes to which shard, and the identity ids
        "prefix": job.prefix,
        "seed": job.seed,
        "max_pixels": job.max_pixels,
        "max_file_bytes": job.max_file_bytes,
        "max_unknown": job.filters.max_unknown,
        "gender_vote": job.filters.gender_vote,
        "min_images": job.filters.min_images,
        "max_images": job.filters.max_images,
        "styles": list(job.styles) if job.styles is not None else None,
        # the library file's contents decide the third texts, not where it lies
        "sentences": {"mode": job.sentences.option.mode, "sha256": job.sentences.sha256} if job.sentences else None,
    }
