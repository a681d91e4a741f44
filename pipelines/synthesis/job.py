"""The synthesis job's validated settings: flags in, a frozen ``Job`` out, every bad value named in one line (an
:class:`~common.errors.InputError`); and its fingerprint, the settings that enter job.json."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apache_beam.io.filesystem import BeamIOError, CompressionTypes
from apache_beam.io.filesystems import FileSystems

from common.devices import check_device_name, resolve_device
from common.errors import InputError, error_line
from pipelines.shared.job_record import INFORMATION
from pipelines.shared.options import checked_prefix
from pipelines.synthesis.inputs import InputSpec, read_image_list, resolve_input
from pipelines.synthesis.ordering import ORDER_VERSION
from shards import layout
from spac.attributes import load_schema
from spac.captioning import captioner
from spac.captioning.library import SentencesOption, library_for, parse_library_text, parse_sentences_option
from spac.corpus import filters as corpus_filters
from spac.corpus.identity_cleaning import CleaningConfig
from spac.fingerprint import method_fingerprint
from spac.generation.attributes import PREDICTOR_NAME as MLLM_PREDICTOR
from spac.generation.attributes import describe_asker
from spac.generation.backends import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_TIMEOUT_S, Backend
from spac.generation.checks import DEFAULT_MAX_WORDS, DEFAULT_MIN_WORDS
from spac.generation.requests import DecodingSettings
from spac.generation.server import DEFAULT_API_KEY_ENV, check_base_url
from spac.generation.stage import (
    DEFAULT_MIN_CONFIDENCE,
    DEFAULT_TEXTS,
    CheckSettings,
    GenerationSettings,
    prompt_book,
)
from spac.generation.styled import DEFAULT_BATCH_SIZE as CAPTIONER_BATCH_SIZE
from spac.generation.styled import DEFAULT_MAX_NEW_TOKENS as CAPTIONER_MAX_TOKENS
from spac.generation.styled import StyledDecoding
from spac.neural_captioner.files import captioner_files_sha256, check_captioner
from spac.predictor.model import check_predictor


@dataclass(frozen=True)
class Sentences:
    """``--sentences``: a library file read and checked at launch; its text travels with the job to the
    workers, so they need no access to the file."""

    option: SentencesOption
    text: str
    sha256: str


def job_captioner(sentences: Sentences | None) -> captioner.Captioner:
    """The captioner of a job: the bundled sentence library, or the --sentences one the job read at launch."""
    schema = load_schema()
    option = sentences.option if sentences is not None else None
    return captioner.Captioner(schema, library=library_for(option, schema, sentences.text if sentences else None))


@dataclass(frozen=True)
class CaptionModel:
    """--captioner mllm: the caption model's backend, and the caption-model stage's settings but its prompts."""

    backend: Backend
    texts: int
    min_confidence: float
    min_words: int
    max_words: int
    batch_size: int  # images per call of the stage

    def settings(
        self, with_captioner: captioner.Captioner, seed: int, styles: Sequence[str] | None = None
    ) -> GenerationSettings:
        """The stage's settings, with the prompts of ``with_captioner``'s sentence library and of ``styles``
        (--styles; default: every style) alone."""
        return GenerationSettings(
            prompt_book(with_captioner, styles),
            texts_per_image=self.texts,
            seed=seed,
            min_confidence=self.min_confidence,
            min_words=self.min_words,
            max_words=self.max_words,
            schema=with_captioner.schema,
        )


@dataclass(frozen=True)
class NeuralCaptioner:
    """--captioner spac: the captioner's folder (loaded on the workers), the sha256 of its files (empty when a
    remote run's workers have the folder and this machine does not), its decoding, the stage's chunk size and
    the checks its texts pass."""

    path: str
    files_sha256: tuple[tuple[str, str], ...]
    decoding: StyledDecoding
    batch_size: int
    checks: CheckSettings = dataclasses.field(default_factory=CheckSettings)

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for job.json: the folder as given (each record's ``caption_model``), its files'
        sha256 (a resume with other weights is refused), the decoding and the checks."""
        return {
            "model": self.path,
            "files_sha256": dict(self.files_sha256),
            "decoding": self.decoding.describe(),
            "checks": self.checks.describe(),
        }


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
    caption_model: CaptionModel | None = None  # --captioner mllm (in job.json's fingerprint)
    attribute_model: Backend | None = None  # --predictor mllm (in job.json's fingerprint)
    neural_captioner: NeuralCaptioner | None = None  # --captioner spac (in job.json's fingerprint)

    @property
    def mllm_backend(self) -> Backend | None:
        """The --mllm_* model of --predictor mllm or --captioner mllm (both use the same one), if any."""
        return self.attribute_model or (self.caption_model.backend if self.caption_model is not None else None)


def is_local_runner(runner: str | None) -> bool:
    """DirectRunner (the default) runs on this machine; any other runner runs on remote workers."""
    return runner is None or "direct" in runner.lower()


def _check_predictor(path: str | None, local: bool) -> str | None:
    """A local run checks the predictor here, so a bad one is one line before the job starts; a remote one
    loads it on the workers (e.g. baked into the image), which this machine may not see."""
    if local and path != MLLM_PREDICTOR:
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
        raise InputError(
            f"--max_batch_size: {max_batch_size} is below --batch_size {batch_size} (every batch is "
            "padded to --batch_size, so a smaller cap only pads)"
        )
    return max_batch_size


def _cleaning(args: argparse.Namespace) -> CleaningConfig | None:
    if getattr(args, "identity_cleaning", "off") == "off":
        return None
    try:
        return CleaningConfig(
            outlier_similarity=args.outlier_similarity,
            merge_similarity=args.merge_similarity,
            lsh_tables=args.lsh_tables,
            lsh_bits=args.lsh_bits,
        )
    except ValueError as exc:
        raise InputError(f"--identity_cleaning: {exc}") from None


MLLM_FLAGS = (
    "mllm_model",
    "mllm_server",
    "mllm_texts",
    "mllm_api_key_env",
    "mllm_timeout",
    "mllm_concurrency",
    "mllm_batch_size",
    "mllm_min_confidence",
    "mllm_min_words",
    "mllm_max_words",
    "mllm_temperature",
    "mllm_seed",
)
SERVER_FLAGS = ("mllm_api_key_env", "mllm_timeout", "mllm_concurrency")
CAPTION_FLAGS = ("mllm_texts", "mllm_min_confidence", "mllm_min_words", "mllm_max_words")  # the stage's own


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def _uses_mllm(args: argparse.Namespace) -> bool:
    return getattr(args, "captioner", "template") == "mllm" or args.predictor == MLLM_PREDICTOR


def _backend(args: argparse.Namespace, device: str) -> Backend | None:
    """The --mllm_* model, for --captioner mllm and --predictor mllm, its flags checked together: an --mllm_*
    flag without either, or a server-only flag without --mllm_server, is refused rather than ignored."""
    given = [name for name in MLLM_FLAGS if getattr(args, name, None) is not None]
    if not _uses_mllm(args):
        if given:
            raise InputError(f"--{given[0]} needs --captioner mllm or --predictor mllm")
        return None
    if args.mllm_model is None:
        which = "--captioner mllm" if getattr(args, "captioner", "template") == "mllm" else "--predictor mllm"
        raise InputError(
            f"{which} needs --mllm_model (the model a --mllm_server serves, else a hub name or local folder to "
            "load in the workers)"
        )
    if args.mllm_server is None and (server_only := [name for name in SERVER_FLAGS if name in given]):
        raise InputError(f"--{server_only[0]} applies to --mllm_server only")
    if args.mllm_server is not None:
        try:
            check_base_url(args.mllm_server)
        except InputError as exc:
            raise InputError(f"--mllm_server: {exc}") from None
    decoding = DecodingSettings(temperature=_given(args.mllm_temperature, 0.0), seed=_given(args.mllm_seed, 0))
    return Backend(
        args.mllm_model,
        args.mllm_server,
        _given(args.mllm_api_key_env, DEFAULT_API_KEY_ENV),
        _given(args.mllm_timeout, DEFAULT_TIMEOUT_S),
        _given(args.mllm_concurrency, DEFAULT_CONCURRENCY),
        device,
        _given(args.mllm_batch_size, DEFAULT_BATCH_SIZE),
        decoding,
    )


def _caption_model(args: argparse.Namespace, backend: Backend) -> CaptionModel | None:
    """--captioner mllm: the stage's settings (--mllm_texts and the rest) over the --mllm_* model."""
    if getattr(args, "captioner", "template") != "mllm":
        if given := [name for name in CAPTION_FLAGS if getattr(args, name, None) is not None]:
            raise InputError(f"--{given[0]} needs --captioner mllm")
        return None
    return CaptionModel(
        backend,
        _given(args.mllm_texts, DEFAULT_TEXTS),
        _given(args.mllm_min_confidence, DEFAULT_MIN_CONFIDENCE),
        _given(args.mllm_min_words, DEFAULT_MIN_WORDS),
        _given(args.mllm_max_words, DEFAULT_MAX_WORDS),
        _given(args.mllm_batch_size, DEFAULT_BATCH_SIZE),
    )


NEURAL_CAPTIONER_FLAGS = (
    "captioner_model",
    "captioner_batch_size",
    "captioner_temperature",
    "captioner_seed",
    "captioner_max_tokens",
)


def _captioner_files(path: str, local: bool) -> tuple[tuple[str, str], ...]:
    """The folder checked and its files hashed here; a remote run's workers may hold a folder this machine
    lacks (e.g. baked into their image), which then goes into job.json by its path alone."""
    if not local and not Path(path).exists():
        return ()
    try:
        check_captioner(path)
        return tuple(sorted(captioner_files_sha256(path).items()))
    except FileNotFoundError as exc:
        raise InputError(f"--captioner_model: {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise InputError(f"--captioner_model: {error_line(exc)}") from None


def _neural_captioner(args: argparse.Namespace, local: bool) -> NeuralCaptioner | None:
    """--captioner spac: the --captioner_* flags checked together (one given without it is refused)."""
    if getattr(args, "captioner", "template") != "spac":
        if given := [name for name in NEURAL_CAPTIONER_FLAGS if getattr(args, name, None) is not None]:
            raise InputError(f"--{given[0]} needs --captioner spac")
        return None
    if args.captioner_model is None:
        raise InputError("--captioner spac needs --captioner_model (a folder saved by `spac train-captioner`)")
    return NeuralCaptioner(
        args.captioner_model,
        _captioner_files(args.captioner_model, local),
        StyledDecoding(
            _given(args.captioner_temperature, 0.0),
            _given(args.captioner_seed, 0),
            _given(args.captioner_max_tokens, CAPTIONER_MAX_TOKENS),
        ),
        _given(args.captioner_batch_size, CAPTIONER_BATCH_SIZE),
    )


def _attribute_model(args: argparse.Namespace, backend: Backend | None) -> Backend | None:
    """--predictor mllm: the --mllm_* model asked for the attributes; it has no appearance vectors to clean
    identities with."""
    if args.predictor != MLLM_PREDICTOR:
        return None
    if getattr(args, "identity_cleaning", "off") != "off":
        raise InputError("--identity_cleaning needs a trained --predictor (its image embeddings); mllm has none")
    return backend


def _generation(job: Job) -> GenerationSettings:
    """The caption-model stage's settings of ``job`` (which has a caption model); InputError names a bad one."""
    try:
        return job.caption_model.settings(job_captioner(job.sentences), job.seed, job.styles)
    except InputError as exc:
        raise InputError(f"--captioner mllm: {exc}") from None


def make_job(args: argparse.Namespace, runner: str | None) -> Job:
    """Check every setting before the job starts; InputError names the first bad one."""
    local = is_local_runner(runner)
    spec = resolve_input(
        args.input,
        getattr(args, "input_format", "auto"),
        getattr(args, "identity_field", None),
        getattr(args, "identity_pattern", None),
    )
    if spec.manifest is not None and "://" not in spec.manifest:
        read_image_list(spec.manifest)  # a bad row stops here in one line, not as a traceback from the workers
    filters = corpus_filters.FilterConfig(
        args.max_unknown, args.gender_vote, args.min_images, args.max_images, args.seed
    )
    predictor, device = _check_predictor(args.predictor, local), _device(args.device, local)
    backend = _backend(args, device)
    job = Job(
        input=spec,
        output=args.output,
        predictor=predictor,
        device=device,
        batch_size=args.batch_size,
        torch_threads=args.torch_threads,
        shard_size=args.shard_size,
        prefix=checked_prefix(args.prefix),
        seed=args.seed,
        filters=filters,
        styles=_styles(args.styles),
        max_pixels=args.max_pixels,
        max_file_bytes=args.max_file_bytes,
        sentences=read_sentences(args.sentences),
        max_batch_size=_max_batch_size(args.max_batch_size, args.batch_size),
        share_model=args.share_model or args.model_copies is not None,
        model_copies=args.model_copies,
        limit=getattr(args, "limit", None),
        cleaning=_cleaning(args),
        caption_model=_caption_model(args, backend),
        attribute_model=_attribute_model(args, backend),
        neural_captioner=_neural_captioner(args, local),
    )
    if job.caption_model is not None:
        _generation(job)  # texts, words and prompts checked together before the job starts
    return job


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
        # only with --captioner mllm, so a template job keeps the fingerprint it always had
        **(
            {"generator": job.caption_model.backend.describe(), "generation": _generation(job).describe()}
            if job.caption_model is not None
            else {}
        ),
        # only with --captioner spac: the captioner's files, decoding and checks
        **({"neural_captioner": job.neural_captioner.describe()} if job.neural_captioner is not None else {}),
        # only with --predictor mllm (whose "predictor" above is its name): the model and how it is asked
        **({"attribute_model": describe_asker(job.attribute_model)} if job.attribute_model is not None else {}),
        **_information(job),
    }


def _information(job: Job) -> dict[str, Any]:
    """Where the caption model was served: in job.json, but not compared by a resume (the same model served
    elsewhere writes the same texts)."""
    backend = job.mllm_backend
    if backend is None or backend.server is None:
        return {}
    return {INFORMATION: {"mllm_server": check_base_url(backend.server)}}
