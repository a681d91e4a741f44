"""GPU throughput of the three costs behind SYNTH-PEDES, and what they project for its 4.8M images.

    python benchmarks/gpu_throughput.py --json-out gpu_throughput.json        # on a GPU machine, a few minutes
    python benchmarks/gpu_throughput.py --device cpu --quick                  # a smoke run of every section

``--quick`` runs the same code on tiny sizes and tiny models (the ``tiny`` predictor backbone, the RN-tiny preset).

Sections (``--sections``, all by default), each measured in this one process:

* predictor: images/s of the bundled demo predictor and of an untrained ResNet-50-backbone predictor at 256x128,
  in float32 and with the job's CUDA acceleration (``acceleration_for``: bf16 autocast + channels_last), per
  batch size: the forward on batches already decoded (what the GPU sustains when the CPU keeps up) and
  ``LoadedPredictor.predict_encoded``, the job's RunInference call (corpus JPEGs in, so the decode is in it);
* job: ``pipelines.synthesize.run`` on DirectRunner with ``--device`` over a rendered folder, with each
  predictor: input images per wall second, and per stage (decode, inference, filter, caption, and the rest:
  runner start-up and overhead, grouping, writing) images per second of worker time, the slowest of which bounds
  the job;
* pretrain: steps/s and samples/s of PLIP pre-training steps of the RN50 preset (its BERT-base randomly
  initialised, MiniLM's tokenizer: the same vocabulary) in the program's precision (bf16 autocast on CUDA), on
  one synthetic batch in pinned host memory, as the program's loader hands them over;
* mllm (only with ``--mllm-model PATH``, e.g. a local copy of SmolVLM-256M-Instruct or Qwen2-VL-2B-Instruct): the
  caption-model stage's in-process backend (``InProcessGenerator``: bf16 on CUDA, greedy, 96 new tokens at most)
  on the stage's requests for person crops, two texts per image, per ``--mllm-batch-sizes``: images/s and
  texts/s of ``generate`` alone (the stage's checks cost little beside it: benchmarks/mllm_throughput.py);
* captioner (only with ``--captioner-model DIR``, a folder `spac train-captioner` saved): SPAC's neural captioner
  as the job's ``--captioner spac`` stage writes with it (``StyledWriter.write``: corpus JPEGs in, both styles,
  greedy, ``--captioner-max-tokens`` at most) in float32 and with the job's CUDA autocast (bf16), per
  ``--captioner-batch-sizes``: images/s, texts/s and tokens/s (the stage's checks beside it:
  benchmarks/neural_captioner_throughput.py);
* mllm_server (only with ``--mllm-server URL --mllm-model NAME``, e.g. ``vllm serve`` on this machine's GPU): the
  mllm section's requests through the job's own client (``spac.generation.server``, the ``--mllm_server``
  backend), per ``--mllm-concurrency`` (requests in flight): images/s and texts/s.

Then a table: wall time for 4.8M images on one GPU and on ``--workers`` Dataflow workers (one GPU each, the rate
measured here per worker, Dataflow's start-up not counted), and one pre-training epoch over 4.8M samples; for the
synthesis rows also what the workers cost: workers x (wall time + ``--startup-minutes``) x ``--price-per-gpu-hour``,
Dataflow Shuffle (about $1.6) aside. A server row assumes one server per worker GPU at the rate measured here.
Nothing is downloaded. With ``--device cuda`` (the default) on a machine without CUDA it exits 2 with one line, as
it does for a bad flag value and for an ``--mllm-server`` that does not answer ``GET /models``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the copied tree, wherever it lands
from bench_common import alternate, person_crops  # noqa: E402
from mllm_throughput import stage_inputs  # noqa: E402
from pretrain_throughput import synthetic_batch  # noqa: E402

from common.cli import (  # noqa: E402
    OneLineArgumentParser,
    device,
    name_list,
    non_negative_float,
    positive_float,
    positive_int,
    run_main,
    silence_libraries,
)
from common.training import grad_scaler, resolve_precision  # noqa: E402
from pipelines.synthesis.model_handler import Acceleration, LoadedPredictor, acceleration_for  # noqa: E402
from pipelines.synthesis.stage_rates import stage_metrics, stage_rates  # noqa: E402
from pipelines.synthesize import counters, run  # noqa: E402
from plip.config import MINILM  # noqa: E402
from plip.losses import PLIPLoss  # noqa: E402
from plip.programs import distributed  # noqa: E402
from plip.programs.pretrain import LOSSES, ModelChoice, Training, build_model, train_step  # noqa: E402
from plip.programs.schedule import warmup_step_decay  # noqa: E402
from plip.programs.training import build_optimizer, freeze_text_layers  # noqa: E402
from shards import GROUPS, encode_image  # noqa: E402
from spac.attributes import load_schema  # noqa: E402
from spac.predictor.model import (  # noqa: E402
    BACKBONE_PRESETS,
    AttributePredictor,
    PredictorConfig,
    build_predictor,
    load_predictor,
    save_predictor,
)
from spac.render import render_dataset  # noqa: E402

PROG = "benchmarks/gpu_throughput.py"
# mllm, captioner and mllm_server: by default only when --mllm-model, --captioner-model and --mllm-server are given
SECTIONS = ("predictor", "job", "pretrain", "mllm", "captioner", "mllm_server")
SYNTH_PEDES_IMAGES = 4_800_000
# docker/README.md, "What 4.8M images cost, on paper": a g2-standard-8 + L4 Dataflow worker per hour (L4 $0.56 +
# 8 vCPU and 32 GB $0.56, us-central1 on demand), and the minutes a worker is paid before it works
PRICE_PER_GPU_HOUR = 1.12
STARTUP_MINUTES = 6.0
PRETRAIN_EPOCHS = 70  # the program's default --epochs
IMAGES_PER_IDENTITY = 10
# RN50's text encoder is bert-base-uncased, not on disk: its layout randomly initialised, with MiniLM's tokenizer
# (the same uncased WordPiece vocabulary). The other presets use the offline MiniLM as they are.
PRESET_OVERRIDES: dict[str, dict[str, Any]] = {"RN50": {"text": {"pretrained": False, "tokenizer": MINILM}}}
# Sizes and models of a full run (a few minutes on one GPU) and of --quick (a CPU smoke run: the same code on
# tiny models); a size flag given wins over both.
FULL = {
    "images": 2000,
    "batch_sizes": (64, 128, 256),
    "rounds": 3,
    "pretrain_steps": 20,
    "pretrain_batch_size": 128,
    "batches_per_round": 4,
    "backbone": "resnet50",
    "preset": "RN50",
    "mllm_batch_sizes": (1, 4, 16),
    "captioner_batch_sizes": (16, 64, 256),
    "captioner_max_tokens": 64,
    "mllm_concurrency": (8, 32, 128),
    "mllm_images": 256,
}
QUICK = {
    "images": 10,
    "batch_sizes": (4,),
    "rounds": 1,
    "pretrain_steps": 1,
    "pretrain_batch_size": 4,
    "batches_per_round": 1,
    "backbone": "tiny",
    "preset": "RN-tiny",
    "mllm_batch_sizes": (1, 2),
    "captioner_batch_sizes": (1, 2),
    "captioner_max_tokens": 8,
    "mllm_concurrency": (1, 4),
    "mllm_images": 4,
}


# --- flags -------------------------------------------------------------------------------------------


def positive_int_list(text: str) -> tuple[int, ...]:
    """argparse ``type=``: comma-separated integers, each at least 1."""
    values = tuple(positive_int(part.strip()) for part in text.split(",") if part.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated integers, got none")
    return values


def _parser() -> OneLineArgumentParser:
    p = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--device", type=device, default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    p.add_argument(
        "--sections",
        type=name_list(SECTIONS, "section"),
        help=f"comma-separated, of {', '.join(SECTIONS)} (default: all; mllm only with --mllm-model, captioner "
        "only with --captioner-model, mllm_server only with --mllm-server in place of mllm)",
    )
    p.add_argument(
        "--mllm-model",
        metavar="PATH",
        help="a vision-language model's local folder (AutoModelForImageTextToText + AutoProcessor, e.g. "
        "SmolVLM-256M-Instruct or Qwen2-VL-2B-Instruct): the mllm section's model; with --mllm-server, the name of "
        "the model the server serves",
    )
    p.add_argument(
        "--mllm-server",
        metavar="URL",
        help="an OpenAI-compatible server's base URL (e.g. http://127.0.0.1:8000/v1 of `vllm serve`): the "
        "mllm_server section, through the job's client (an API key, if any, from $SPAC_MLLM_API_KEY)",
    )
    p.add_argument(
        "--mllm-concurrency",
        type=positive_int_list,
        help="requests in flight of the mllm_server section "
        f"(default {','.join(map(str, FULL['mllm_concurrency']))}; --quick "
        f"{','.join(map(str, QUICK['mllm_concurrency']))})",
    )
    p.add_argument(
        "--mllm-images",
        type=positive_int,
        help=f"images per round of the mllm_server section, two requests each (default {FULL['mllm_images']}; "
        f"--quick {QUICK['mllm_images']})",
    )
    p.add_argument(
        "--mllm-batch-sizes",
        type=positive_int_list,
        help="requests per forward pass of the mllm section; each round writes two texts for as many images as "
        f"the largest (default {','.join(map(str, FULL['mllm_batch_sizes']))}; "
        f"--quick {','.join(map(str, QUICK['mllm_batch_sizes']))})",
    )
    p.add_argument(
        "--captioner-model",
        metavar="DIR",
        help="a neural SPAC captioner's folder (`spac train-captioner`): the captioner section's model",
    )
    p.add_argument(
        "--captioner-batch-sizes",
        type=positive_int_list,
        help="images per generate call of the captioner section; each round captions as many images as the "
        f"largest (default {','.join(map(str, FULL['captioner_batch_sizes']))}; "
        f"--quick {','.join(map(str, QUICK['captioner_batch_sizes']))})",
    )
    p.add_argument(
        "--captioner-max-tokens",
        type=positive_int,
        help=f"tokens a text at most in the captioner section (default {FULL['captioner_max_tokens']}, the job's; "
        f"--quick {QUICK['captioner_max_tokens']})",
    )
    p.add_argument(
        "--images",
        type=positive_int,
        help=f"images rendered for the job, in identities of "
        f"{IMAGES_PER_IDENTITY} (default {FULL['images']}; --quick {QUICK['images']})",
    )
    p.add_argument(
        "--batch-sizes",
        type=positive_int_list,
        help="predictor batch sizes; the job uses the largest "
        f"(default {','.join(map(str, FULL['batch_sizes']))}; --quick {QUICK['batch_sizes'][0]})",
    )
    p.add_argument(
        "--rounds",
        type=positive_int,
        help=f"timed rounds per measurement, after a warm-up; medians "
        f"(default {FULL['rounds']}; --quick {QUICK['rounds']})",
    )
    p.add_argument(
        "--pretrain-steps",
        type=positive_int,
        help=f"pre-training steps per round (default {FULL['pretrain_steps']}; --quick {QUICK['pretrain_steps']})",
    )
    p.add_argument(
        "--pretrain-batch-size",
        type=positive_int,
        help="pre-training samples per step, 4 images per "
        f"identity (default {FULL['pretrain_batch_size']}: 32 identities x 4; --quick "
        f"{QUICK['pretrain_batch_size']})",
    )
    p.add_argument(
        "--workers",
        type=positive_int_list,
        default=(8, 16),
        help="Dataflow worker counts of the projection, one GPU each (default 8,16)",
    )
    p.add_argument(
        "--price-per-gpu-hour",
        type=positive_float,
        default=PRICE_PER_GPU_HOUR,
        help=f"US$ per hour of one one-GPU worker, machine included (default {PRICE_PER_GPU_HOUR}: docker/README.md's "
        "g2-standard-8 + L4, us-central1 on demand)",
    )
    p.add_argument(
        "--startup-minutes",
        type=non_negative_float,
        default=STARTUP_MINUTES,
        help=f"minutes each worker is paid before it works (default {STARTUP_MINUTES:g}, docker/README.md's estimate)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch CPU threads (default: torch's choice; 1 on a shared CPU, where more only contend)",
    )
    p.add_argument("--json-out", type=Path, metavar="PATH", help="also write the results as JSON here")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and models (the tiny predictor backbone, the "
        "RN-tiny preset): every section end to end in seconds, e.g. with --device cpu",
    )
    return p


# --- timing --------------------------------------------------------------------------------------------


def _synchronize(where: torch.device) -> None:
    if where.type == "cuda":
        torch.cuda.synchronize(where)


def print_rows(heading: str, rows: list[dict[str, Any]], rounds: int, line: Callable[[dict[str, Any]], str]) -> None:
    """A section's table: ``heading``, the rounds its medians are of, and each row's ``line`` indented."""
    print(f"{heading} (median of {rounds} rounds)")
    for row in rows:
        print(f"  {line(row)}")


def _repeated(work: Callable[[], object], times: int, items: int, where: torch.device) -> Callable[[], int]:
    """``work`` ``times`` times, the device drained before the clock stops; returns the items handled."""

    def repeat() -> int:
        for _ in range(times):
            work()
        _synchronize(where)
        return times * items

    return repeat


# --- predictor -------------------------------------------------------------------------------------------


def predictor_builders(where: torch.device, backbone: str) -> dict[str, Callable[[], AttributePredictor]]:
    """The demo predictor and an untrained one with ``backbone`` (a BACKBONE_PRESETS name), a fresh copy per
    call (LoadedPredictor turns its model to channels_last in place)."""
    schema = load_schema()

    def untrained() -> AttributePredictor:
        torch.manual_seed(0)
        predictor = build_predictor(PredictorConfig.for_schema(schema, BACKBONE_PRESETS[backbone]), schema)
        # Untrained, it says "unknown" (label 0 of every group) for everyone, and the job's gender vote would drop
        # every identity before captioning and writing; a trained predictor's images go through all of it.
        with torch.no_grad():
            for head in predictor.heads.values():
                head.bias[0] = -1e4
        return predictor.to(where).eval()

    return {"demo": lambda: load_predictor(device=where, schema=schema), backbone: untrained}


def accelerations(where: torch.device) -> dict[str, Acceleration]:
    """float32, and the job's acceleration where it has one (none on the CPU, so fp32 alone there)."""
    modes = {"fp32": Acceleration()}
    fast = acceleration_for(where)
    if fast != Acceleration():
        dtype = str(fast.autocast_dtype).removeprefix("torch.").replace("bfloat", "bf").replace("float", "fp")
        modes[dtype + ("+channels_last" if fast.channels_last else "")] = fast
    return modes


def predictor_section(
    where: torch.device, backbone: str, batch_sizes: Sequence[int], rounds: int, batches_per_round: int
) -> list[dict[str, Any]]:
    """One row per model, mode and batch size: median images/s of the forward and of ``predict_encoded``."""
    jpegs = [encode_image(crop) for crop in person_crops(max(batch_sizes))]  # corpus JPEGs, 256x128
    rows = []
    for name, build in predictor_builders(where, backbone).items():
        models = {mode: (build(), acceleration) for mode, acceleration in accelerations(where).items()}
        preprocess_batch = next(iter(models.values()))[0].preprocess_batch
        for batch_size in batch_sizes:
            chunk = jpegs[:batch_size]
            tensors = preprocess_batch([Image.open(io.BytesIO(data)) for data in chunk])
            runs = {}
            for mode, (predictor, acceleration) in models.items():
                loaded = LoadedPredictor(predictor, batch_size, acceleration=acceleration)
                runs[(mode, "forward")] = _repeated(
                    lambda m=loaded, batch=tensors: m.predict_preprocessed(batch), batches_per_round, batch_size, where
                )
                runs[(mode, "encoded")] = _repeated(
                    lambda m=loaded, jpegs=chunk: m.predict_encoded(jpegs), batches_per_round, batch_size, where
                )
            rates = alternate(runs, rounds)  # modes in turns: their ratio is not a drift of the machine
            for mode in models:
                rows.append(
                    {
                        "model": name,
                        "mode": mode,
                        "batch_size": batch_size,
                        "images_per_s": statistics.median(rates[(mode, "forward")]),
                        "images_per_s_with_decode": statistics.median(rates[(mode, "encoded")]),
                    }
                )
        del models
        if where.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def print_predictor(rows: list[dict[str, Any]], rounds: int) -> None:
    print(f"predictor images/s at 256x128 (median of {rounds} rounds)")
    print(f"  {'model':<9} {'mode':<20} {'batch':>5} {'forward':>12} {'with decode':>12} {'vs fp32':>8}")
    fp32 = {(r["model"], r["batch_size"]): r["images_per_s"] for r in rows if r["mode"] == "fp32"}
    for r in rows:
        ratio = r["images_per_s"] / fp32[(r["model"], r["batch_size"])]
        print(
            f"  {r['model']:<9} {r['mode']:<20} {r['batch_size']:>5} {r['images_per_s']:>12,.1f} "
            f"{r['images_per_s_with_decode']:>12,.1f} {ratio:>7.2f}x"
        )


# --- job ---------------------------------------------------------------------------------------------------


def job_rates(wall: float, read: int, stages: list[tuple[str, int, float]]) -> dict[str, float]:
    """Images/s per stage (of worker time) and of ``other``: the wall time no timed stage accounts for."""
    rates = {stage: rate for stage, _, rate in stages}
    other = wall - sum(images / rate for _, images, rate in stages)
    if other > 0:
        rates["other"] = read / other
    return rates


def run_job(
    folder: Path, output: Path, where: torch.device, batch_size: int, predictor: Path | None, *extra: str
) -> tuple[float, Any]:
    """(wall seconds, PipelineResult) of one synthesis job over ``folder``."""
    flags = [
        "--runner=DirectRunner",
        "--input",
        str(folder),
        "--output",
        str(output),
        "--device",
        str(where),
        "--batch_size",
        str(batch_size),
        # filters loosened: with an untrained predictor's labels they would leave the later stages idle
        "--max_unknown",
        str(len(GROUPS) + 1),
        "--gender_vote",
        "0",
        "--min_images",
        "1",
        *(["--predictor", str(predictor)] if predictor is not None else []),
        *extra,
    ]
    start = time.perf_counter()
    result = run(flags, save_main_session=False)
    return time.perf_counter() - start, result


def job_section(
    where: torch.device,
    backbone: str,
    images: int,
    batch_size: int,
    rounds: int,
    workdir: Path,
) -> list[dict[str, Any]]:
    """One row per predictor: median input images per wall second of the job, its stages and their bound."""
    per_identity = min(IMAGES_PER_IDENTITY, images)
    folder = workdir / "images"
    render_dataset(folder, images // per_identity, per_identity, seed=11)
    untrained = workdir / backbone
    save_predictor(predictor_builders(torch.device("cpu"), backbone)[backbone](), untrained)
    outputs = (workdir / f"out{n}" for n in range(10**6))
    rows = []
    for name, path in (("demo", None), (backbone, untrained)):
        run_job(folder, next(outputs), where, batch_size, path, "--limit", str(batch_size))  # model load, CUDA init
        walls, stages, read, written = [], [], 0, 0
        for _ in range(rounds):
            wall, result = run_job(folder, next(outputs), where, batch_size, path)
            counts = counters(result)
            read, written = counts.get("read", 0), counts.get("written", 0)
            walls.append(wall)
            stages.append(job_rates(wall, read, stage_rates(stage_metrics(result))))
        names = dict.fromkeys(stage for rates in stages for stage in rates)
        medians = {stage: statistics.median(r[stage] for r in stages if stage in r) for stage in names}
        rows.append(
            {
                "predictor": name,
                "images": read,
                "written": written,
                "batch_size": batch_size,
                "images_per_s": read / statistics.median(walls),
                "stages_images_per_s": medians,
                "bound": min(medians, key=medians.get) if medians else None,
            }
        )
    return rows


def print_job(rows: list[dict[str, Any]], where: torch.device, rounds: int) -> None:
    for r in rows:
        print(
            f"synthesis job, DirectRunner, --device {where}, {r['predictor']} predictor, {r['images']} images "
            f"({r['written']} written), batch {r['batch_size']}: {r['images_per_s']:,.1f} images/s (median wall of "
            f"{rounds} rounds)"
        )
        stages = ", ".join(f"{s} {v:,.0f}" for s, v in r["stages_images_per_s"].items())
        print(f"  images/s of worker time per stage: {stages}; bound: {r['bound']}")


# --- pre-training ------------------------------------------------------------------------------------


def make_training(preset: str, where: torch.device, precision: str) -> Training:
    """The program's pre-training state for ``preset`` on ``where`` (4 trainable text layers), from local files."""
    choice = ModelChoice(
        preset=preset,
        model_overrides=PRESET_OVERRIDES.get(preset, {}),
        text_model=None,
        losses=LOSSES,
        tic_weight=0.02,
        iap_weight=0.1,
    )
    torch.manual_seed(0)
    model = build_model(choice).to(where)
    freeze_text_layers(model, 4)
    optimizer = build_optimizer(model, 2e-3, 0.1, 0.01)
    return Training(
        model,
        model,
        PLIPLoss.from_config(model.config),
        optimizer,
        warmup_step_decay(optimizer, 0, []),
        grad_scaler(where, precision),
        distributed.Context(),
        where,
    )


def pretrain_section(where: torch.device, preset: str, batch_size: int, steps: int, rounds: int) -> dict[str, Any]:
    """Median steps/s of ``steps`` pre-training steps in the program's precision, and samples/s."""
    precision = resolve_precision("auto", where)
    training = make_training(preset, where, precision)
    training.model.train()
    batch = synthetic_batch(training.model, batch_size, seed=0)
    if where.type == "cuda":
        batch = {name: value.pin_memory() for name, value in batch.items()}  # as the program's loader pins them

    def steps_run() -> int:
        for _ in range(steps):
            train_step(training, dict(batch), precision, 5.0)
        _synchronize(where)
        return steps

    rates = alternate({"steps": steps_run}, rounds)["steps"]
    steps_per_s = statistics.median(rates)
    return {
        "preset": preset,
        "text_overrides": PRESET_OVERRIDES.get(preset, {}).get("text", {}),
        "batch_size": batch_size,
        "precision": precision,
        "steps_per_round": steps,
        "steps_per_s": steps_per_s,
        "samples_per_s": steps_per_s * batch_size,
    }


def print_pretrain(result: dict[str, Any], rounds: int) -> None:
    print(
        f"pre-training {result['preset']}, batch {result['batch_size']}, {result['precision']}: "
        f"{result['steps_per_s']:.3f} steps/s, {result['samples_per_s']:,.1f} samples/s "
        f"(median of {rounds} rounds of {result['steps_per_round']} steps)"
    )


# --- caption model ---------------------------------------------------------------------------------------


def generation_rates(
    generator: Any,
    knob: str,
    values: Sequence[int],
    requests: Sequence[Any],
    images: int,
    rounds: int,
    what: str,
    where: torch.device | None = None,
) -> dict[int, dict[str, float]]:
    """Per value of the generator's attribute ``knob`` (an in-process model's batch size, a client's concurrency):
    median images/s and texts/s of its ``generate`` on the stage's ``requests`` for ``images`` images, in
    alternated rounds, the device ``where`` (an in-process model's) drained before the clock stops. A failed
    request raises a RuntimeError naming ``what``: a failure answers fast, and its rate would flatter the model."""

    def at(value: int) -> Callable[[], int]:
        def run() -> int:
            setattr(generator, knob, value)
            answers = generator.generate(requests)
            if where is not None:
                _synchronize(where)
            failed = sum(answer.text is None for answer in answers)
            if failed:
                raise RuntimeError(
                    f"{what} failed {failed} of {len(requests)} requests at {knob.replace('_', ' ')} {value} "
                    "(see the warning above)"
                )
            return images

        return run

    rates = alternate({value: at(value) for value in values}, rounds)
    texts_per_image = len(requests) // images
    return {
        value: {
            "images_per_s": statistics.median(rates[value]),
            "texts_per_s": statistics.median(rates[value]) * texts_per_image,
        }
        for value in values
    }


def mllm_section(model: str, where: torch.device, batch_sizes: Sequence[int], rounds: int) -> list[dict[str, Any]]:
    """One row per batch size: median images/s and texts/s of the in-process backend's ``generate`` on the
    stage's requests (two texts per image) for ``max(batch_sizes)`` images, the model loaded once."""
    from spac.generation.in_process import InProcessGenerator

    images = max(batch_sizes)
    _, requests, _ = stage_inputs(images)
    generator = InProcessGenerator(model, str(where), batch_size=batch_sizes[0])
    rates = generation_rates(generator, "batch_size", batch_sizes, requests, images, rounds, "the caption model", where)
    dtype = str(generator.dtype).removeprefix("torch.")
    return [{"model": model, "dtype": dtype, "batch_size": size, **rates[size]} for size in batch_sizes]


def mllm_line(row: dict[str, Any]) -> str:
    return (
        f"{row['model']} {row['dtype']} batch {row['batch_size']:>3}: {row['images_per_s']:10,.2f} images/s "
        f"{row['texts_per_s']:10,.2f} texts/s"
    )


# --- neural captioner ---------------------------------------------------------------------------------


def captioner_section(
    model: str, where: torch.device, batch_sizes: Sequence[int], max_tokens: int, rounds: int
) -> list[dict[str, Any]]:
    """One row per mode (fp32, and the job's CUDA autocast) and batch size: median images/s, texts/s and tokens/s
    of the job's writer over ``max(batch_sizes)`` person crops' corpus JPEGs, both styles, the model loaded once."""
    from pipelines.synthesis.neural_captioner import accelerated
    from spac.generation.styled import StyledDecoding, StyledWriter
    from spac.neural_captioner.files import load_captioner

    loaded = load_captioner(model, device=where)
    modes: dict[str, Any] = {"fp32": loaded}
    fast = accelerated(loaded)
    if fast is not loaded:
        modes[str(acceleration_for(where).autocast_dtype).removeprefix("torch.")] = fast
    images = max(batch_sizes)
    jpegs = [encode_image(crop) for crop in person_crops(images)]
    keys = [f"p{i:06d}" for i in range(images)]
    tokens: dict[tuple[str, int], list[int]] = {}

    def run_with(mode: str, size: int) -> Callable[[], int]:
        writer = StyledWriter(modes[mode], StyledDecoding(max_new_tokens=max_tokens), size)

        def run() -> int:
            texts = writer.write(jpegs, keys)
            _synchronize(where)
            count = sum(len(loaded.model.tokenizer(t, add_special_tokens=False).input_ids) for ts in texts for t in ts)
            tokens.setdefault((mode, size), []).append(count)
            return images

        return run

    rates = alternate({(mode, size): run_with(mode, size) for mode in modes for size in batch_sizes}, rounds)
    styles = len(loaded.style_names)
    return [
        {
            "model": model,
            "mode": mode,
            "batch_size": size,
            "max_new_tokens": max_tokens,
            "images_per_s": statistics.median(rates[(mode, size)]),
            "texts_per_s": statistics.median(rates[(mode, size)]) * styles,
            "tokens_per_s": statistics.median(rates[(mode, size)]) * statistics.median(tokens[(mode, size)]) / images,
        }
        for mode in modes
        for size in batch_sizes
    ]


def captioner_line(row: dict[str, Any]) -> str:
    return (
        f"{Path(row['model']).name} {row['mode']} batch {row['batch_size']:>3}: {row['images_per_s']:10,.2f} "
        f"images/s {row['texts_per_s']:10,.2f} texts/s {row['tokens_per_s']:12,.1f} tokens/s"
    )


# --- caption model behind a server ---------------------------------------------------------------------


def mllm_server_section(
    url: str, model: str, concurrencies: Sequence[int], images: int, rounds: int
) -> list[dict[str, Any]]:
    """One row per concurrency: median images/s and texts/s of the job's server client on the stage's requests
    (two texts per image) for ``images`` person crops; the server checked first (one line if it does not answer)."""
    from spac.generation.server import OpenAIServerGenerator

    _, requests, _ = stage_inputs(images)
    client = OpenAIServerGenerator(url, model)
    client.check_reachable()
    rates = generation_rates(client, "concurrency", concurrencies, requests, images, rounds, "the caption-model server")
    return [{"server": client.base_url, "model": model, "concurrency": c, **rates[c]} for c in concurrencies]


def mllm_server_line(row: dict[str, Any]) -> str:
    return (
        f"{row['model']} at {row['server']} concurrency {row['concurrency']:>3}: "
        f"{row['images_per_s']:10,.2f} images/s {row['texts_per_s']:10,.2f} texts/s"
    )


# --- projection --------------------------------------------------------------------------------------


def projected_hours(items: int, rate: float, workers: int = 1) -> float:
    """Hours for ``items`` at ``rate`` items/s per worker on ``workers`` workers (linear, no start-up)."""
    if rate <= 0 or workers < 1 or items < 0:
        raise ValueError(f"need rate > 0, workers >= 1 and items >= 0, got {rate}, {workers}, {items}")
    return items / (rate * workers) / 3600


def projected_cost(hours: float, workers: int, price_per_gpu_hour: float, startup_hours: float) -> float:
    """US$ of ``workers`` one-GPU workers busy ``hours`` each, each paid ``startup_hours`` more."""
    return workers * (hours + startup_hours) * price_per_gpu_hour


def _row(what: str, rate: float, synthesis: bool = True) -> dict[str, Any]:
    """A row of the projection table before its hours; a ``synthesis`` row is also projected on each worker count,
    with its cost."""
    return {"what": what, "rate": rate, "synthesis": synthesis}


# The sections whose fastest row is a ceiling of the synthesis job: what that row was measured on.
CEILINGS: dict[str, Callable[[dict[str, Any]], str]] = {
    "mllm": lambda r: f"caption model alone, {Path(r['model']).name} {r['dtype']} batch {r['batch_size']}",
    "captioner": lambda r: f"neural captioner alone, {Path(r['model']).name} {r['mode']} batch {r['batch_size']}",
    "mllm_server": lambda r: f"caption model server, {Path(r['model']).name} concurrency {r['concurrency']}",
}


def projection(
    results: dict[str, Any],
    items: int,
    workers: Sequence[int],
    price_per_gpu_hour: float = PRICE_PER_GPU_HOUR,
    startup_minutes: float = STARTUP_MINUTES,
) -> list[dict[str, Any]]:
    """Rows of the projection table: what, rate per GPU, hours on 1 GPU and per worker count, and for synthesis
    rows the cost in US$ per worker count (1 included: one worker)."""
    rows = [
        _row(f"synthesis job, {job['predictor']} predictor (measured)", job["images_per_s"])
        for job in results.get("job", [])
        if job["images_per_s"] > 0
    ]
    best: dict[str, dict[str, Any]] = {}
    for r in results.get("predictor", []):
        if r["model"] not in best or r["images_per_s"] > best[r["model"]]["images_per_s"]:
            best[r["model"]] = r
    rows += [
        _row(f"predictor forward alone, {r['model']} {r['mode']} batch {r['batch_size']} (ceiling)", r["images_per_s"])
        for r in best.values()
    ]
    for section, describe in CEILINGS.items():
        if results.get(section):
            fastest = max(results[section], key=lambda r: r["images_per_s"])
            rows.append(_row(f"{describe(fastest)} (ceiling)", fastest["images_per_s"]))
    if "pretrain" in results:
        p = results["pretrain"]
        what = f"pre-training epoch, {p['preset']} {p['precision']} batch {p['batch_size']}"
        rows.append(_row(what, p["samples_per_s"], synthesis=False))
    for row in rows:
        row["hours"] = {"1": projected_hours(items, row["rate"])}
        if row.pop("synthesis"):
            row["hours"].update({str(n): projected_hours(items, row["rate"], n) for n in workers})
            row["cost_usd"] = {
                n: projected_cost(hours, int(n), price_per_gpu_hour, startup_minutes / 60)
                for n, hours in row["hours"].items()
            }
    return rows


def format_hours(hours: float) -> str:
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} s"
    if hours < 1:
        return f"{hours * 60:.1f} min"
    return f"{hours:.2f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _cell(row: dict[str, Any], column: str) -> str:
    if column not in row["hours"]:
        return "-"
    cost = row.get("cost_usd", {}).get(column)
    return format_hours(row["hours"][column]) + (f" ${cost:,.2f}" if cost is not None else "")


def print_projection(
    rows: list[dict[str, Any]],
    items: int,
    workers: Sequence[int],
    where: torch.device,
    price_per_gpu_hour: float = PRICE_PER_GPU_HOUR,
    startup_minutes: float = STARTUP_MINUTES,
) -> None:
    columns = ["1", *map(str, workers)]
    one = "1 GPU" if where.type == "cuda" else "1 CPU"
    print(
        f"projection for {items:,} images (SYNTH-PEDES); workers: Dataflow workers with one GPU each at the rate "
        f"measured here, wall time without their start-up; cost: workers x (wall + {startup_minutes:g} min) x "
        f"${price_per_gpu_hour:g} per GPU-hour (--price-per-gpu-hour), Dataflow Shuffle aside"
    )
    print(f"  {'':<66} {'items/s':>10} " + " ".join(f"{one if c == '1' else c + ' workers':>18}" for c in columns))
    for row in rows:
        cells = " ".join(f"{_cell(row, c):>18}" for c in columns)
        print(f"  {row['what']:<66} {row['rate']:>10,.1f} {cells}")
    epoch = next((r for r in rows if r["what"].startswith("pre-training")), None)
    if epoch is not None:
        print(
            f"  pre-training, {PRETRAIN_EPOCHS} epochs (the program's default) on {one}: "
            f"{format_hours(epoch['hours']['1'] * PRETRAIN_EPOCHS)}"
        )


# --- main ------------------------------------------------------------------------------------------------


def _sizes(args: argparse.Namespace) -> dict[str, Any]:
    defaults = QUICK if args.quick else FULL
    return {name: getattr(args, name, None) or value for name, value in defaults.items()}


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.sections is None:
        given = {
            "mllm": args.mllm_model and not args.mllm_server,
            "captioner": args.captioner_model,
            "mllm_server": args.mllm_server,
        }
        args.sections = tuple(s for s in SECTIONS if given.get(s, True))
    if "mllm" in args.sections and not args.mllm_model:
        parser.error("argument --sections: section mllm needs --mllm-model PATH")
    if "mllm_server" in args.sections and not (args.mllm_server and args.mllm_model):
        parser.error("argument --sections: section mllm_server needs --mllm-server URL and --mllm-model NAME")
    if "captioner" in args.sections and not args.captioner_model:
        parser.error("argument --sections: section captioner needs --captioner-model DIR")
    silence_libraries(True)  # no transformers progress bars between the tables
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = _sizes(args)
    where: torch.device = args.device
    name = torch.cuda.get_device_name(where) if where.type == "cuda" else "cpu"
    print(f"{PROG}: {name}, torch {torch.__version__}, sections {','.join(args.sections)}", flush=True)
    results: dict[str, Any] = {
        "device": str(where),
        "device_name": name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "sizes": dict(sizes),
    }
    if "predictor" in args.sections:
        results["predictor"] = predictor_section(
            where, sizes["backbone"], sizes["batch_sizes"], sizes["rounds"], sizes["batches_per_round"]
        )
        print_predictor(results["predictor"], sizes["rounds"])
    if "job" in args.sections:
        with tempfile.TemporaryDirectory() as tmp:
            results["job"] = job_section(
                where, sizes["backbone"], sizes["images"], max(sizes["batch_sizes"]), sizes["rounds"], Path(tmp)
            )
        print_job(results["job"], where, sizes["rounds"])
    if "pretrain" in args.sections:
        results["pretrain"] = pretrain_section(
            where, sizes["preset"], sizes["pretrain_batch_size"], sizes["pretrain_steps"], sizes["rounds"]
        )
        print_pretrain(results["pretrain"], sizes["rounds"])
    if "mllm" in args.sections:
        results["mllm"] = mllm_section(args.mllm_model, where, sizes["mllm_batch_sizes"], sizes["rounds"])
        print_rows("caption model in process, two texts per image", results["mllm"], sizes["rounds"], mllm_line)
    if "captioner" in args.sections:
        results["captioner"] = captioner_section(
            args.captioner_model,
            where,
            sizes["captioner_batch_sizes"],
            sizes["captioner_max_tokens"],
            sizes["rounds"],
        )
        heading = "neural SPAC captioner, both styles per image"
        print_rows(heading, results["captioner"], sizes["rounds"], captioner_line)
    if "mllm_server" in args.sections:
        results["mllm_server"] = mllm_server_section(
            args.mllm_server, args.mllm_model, sizes["mllm_concurrency"], sizes["mllm_images"], sizes["rounds"]
        )
        heading = "caption model behind a server, through the job's client, two texts per image"
        print_rows(heading, results["mllm_server"], sizes["rounds"], mllm_server_line)
    costs = (args.price_per_gpu_hour, args.startup_minutes)
    results["projection"] = {
        "images": SYNTH_PEDES_IMAGES,
        "workers": list(args.workers),
        "price_per_gpu_hour": args.price_per_gpu_hour,
        "startup_minutes": args.startup_minutes,
        "rows": projection(results, SYNTH_PEDES_IMAGES, args.workers, *costs),
    }
    print_projection(results["projection"]["rows"], SYNTH_PEDES_IMAGES, args.workers, where, *costs)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Bad flags (and ``--device cuda`` without CUDA) are one line on stderr and exit code 2."""
    return run_main(PROG, _main, argv)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)
    sys.exit(main())
