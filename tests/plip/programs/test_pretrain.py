import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from plip.checkpoint import CONFIG_FILE, MODEL_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE
from plip.losses import PLIPLoss
from plip.programs import distributed
from plip.programs.pretrain import ModelChoice, Training, build_model, main, train_step
from plip.programs.schedule import warmup_step_decay
from plip.programs.train_data import BatchSpec, IdentityBatches
from plip.programs.training import build_optimizer, freeze_text_layers
from tests.plip.programs._exit import exit_code
from tests.plip.train_corpus import tiny_flags, write_damaged_copy, write_rendered_corpus, write_tiny_text_model

REPO = Path(__file__).resolve().parents[3]
EVAL_SIZE = (256, 128)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    return SimpleNamespace(
        corpus=write_rendered_corpus(root / "train", identities=8, images_per_identity=4, shards=2),
        held_out=write_rendered_corpus(
            root / "held_out", identities=3, images_per_identity=2, shards=1, seed=9, first_identity=100
        ),
        text_model=write_tiny_text_model(root / "bert"),
    )


def flags(inputs, out: Path, *extra: str, image_size: tuple[int, int] = (64, 32)) -> list[str]:
    return [
        "--shards",
        str(inputs.corpus),
        "--out",
        str(out),
        "--ids-per-batch",
        "2",
        "--images-per-id",
        "2",
        "--steps-per-epoch",
        "3",
        "--epochs",
        "2",
        "--max-steps",
        "4",
        "--log-every",
        "1",
        "--lr",
        "1e-3",
        "--warmup-epochs",
        "0.5",
        "--milestones",
        "1",
        "--shuffle-buffer",
        "8",
        *tiny_flags(inputs.text_model, image_size),
        *extra,
    ]


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def train_losses(run_dir: Path) -> dict[int, float]:
    return {m["step"]: m["loss"] for m in read_metrics(run_dir) if m["kind"] == "train"}


@pytest.fixture(scope="module")
def uninterrupted(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "full"
    # at the evaluation's 256x128, so that the resumed run below can evaluate
    assert main(flags(inputs, out, "--checkpoint-every", "2", image_size=EVAL_SIZE)) == 0
    return out


def test_a_run_writes_metrics_lines_and_checkpoints(uninterrupted):
    metrics = read_metrics(uninterrupted)
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    assert [m["epoch"] for m in metrics] == [0, 0, 0, 1]
    for entry in metrics:
        assert {"loss", "ivlc_loss", "tic_loss", "iap_loss", "lr_main", "lr_text", "samples_per_s"} <= entry.keys()
        assert entry["loss"] == pytest.approx(entry["ivlc_loss"] + entry["tic_loss"] + entry["iap_loss"], rel=1e-5)
    # warm-up over 2 steps (0.5 epoch), x0.1 from the first step of epoch 1; the text encoder at a tenth
    assert [m["lr_main"] for m in metrics] == pytest.approx([5e-4, 1e-3, 1e-3, 1e-4])
    assert [m["lr_text"] for m in metrics] == pytest.approx([5e-5, 1e-4, 1e-4, 1e-5])
    names = sorted(p.name for p in (uninterrupted / "checkpoints").iterdir())
    assert names == ["step-00000002", "step-00000004"]
    for name in names:
        folder = uninterrupted / "checkpoints" / name
        assert all((folder / f).is_file() for f in (MODEL_FILE, CONFIG_FILE, OPTIMIZER_FILE, TRAINER_STATE_FILE))
    state = json.loads((uninterrupted / "checkpoints/step-00000004" / TRAINER_STATE_FILE).read_text())
    assert (state["step"], state["epoch"], state["data_position"]) == (4, 1, {"epoch": 1, "batches_consumed": 1})
    assert json.loads((uninterrupted / "args.json").read_text())["steps_per_epoch"] == 3


def test_resume_continues_exactly_and_evaluation_does_not_disturb_training(inputs, uninterrupted, tmp_path):
    # A crash after step 4 whose last checkpoint is step 2: the metrics of steps 3-4 are redone.
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copytree(uninterrupted / "checkpoints/step-00000002", out / "checkpoints/step-00000002")
    shutil.copy(uninterrupted / "metrics.jsonl", out / "metrics.jsonl")
    extra = ["--resume", "--checkpoint-every", "2", "--eval-shards", str(inputs.held_out), "--eval-every", "1"]
    assert main(flags(inputs, out, *extra, image_size=EVAL_SIZE)) == 0
    assert train_losses(out) == train_losses(uninterrupted)  # bitwise: same floats
    evaluations = [m for m in read_metrics(out) if m["kind"] == "eval"]
    assert [m["step"] for m in evaluations] == [3, 4]
    assert evaluations[0]["queries"] == 3 * 2 * 3 and 0 <= evaluations[0]["R@1"] <= 100


def test_resume_refuses_changed_batch_settings(inputs, uninterrupted, tmp_path, capsys):
    resume = ["--resume", str(uninterrupted / "checkpoints/step-00000002")]
    changed = flags(inputs, tmp_path / "other", *resume, image_size=EVAL_SIZE)
    changed[changed.index("--ids-per-batch") + 1] = "4"
    assert main(changed) == 2
    assert "ids_per_batch was 2, now 4" in capsys.readouterr().err


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(inputs):
    torch.manual_seed(0)
    choice = ModelChoice(
        model_overrides=json.loads(tiny_flags(inputs.text_model)[5]),
        tic_weight=0.02,
        iap_weight=0.1,
        losses=("ivlc", "tic", "iap"),
        text_model=str(inputs.text_model),
        preset="RN-tiny",
    )
    model = build_model(choice)
    freeze_text_layers(model, 1)
    for module in model.modules():  # dropout noise would blur a 12-step trend on one batch
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    optimizer = build_optimizer(model, lr=1e-3, text_lr_scale=1.0, weight_decay=0.0)
    training = Training(
        model,
        model,
        PLIPLoss.from_config(model.config),
        optimizer,
        warmup_step_decay(optimizer, 0, []),
        torch.amp.GradScaler("cpu", enabled=False),
        distributed.Context(),
        torch.device("cpu"),
    )
    spec = BatchSpec(
        source=str(inputs.corpus),
        tokenizer=model.tokenizer,
        ids_per_batch=4,
        images_per_id=2,
        steps_per_epoch=1,
        total_steps=1,
        image_size=(64, 32),
        max_length=64,
        shuffle=0,
    )
    batch = next(iter(IdentityBatches(spec, epoch=0)))
    del batch["batch_index"], batch["skipped_samples"]
    model.train()
    losses = [train_step(training, batch, "fp32", clip_grad=5.0) for _ in range(12)]
    for name in ("loss", "ivlc_loss", "tic_loss", "iap_loss"):
        assert losses[-1][name] < 0.9 * losses[0][name], name


def test_a_loss_left_out_builds_no_head(inputs):
    choice = ModelChoice(
        model_overrides={},
        tic_weight=0.02,
        iap_weight=0.1,
        losses=("ivlc",),
        text_model=str(inputs.text_model),
        preset="RN-tiny",
    )
    model = build_model(choice)
    assert model.tic_head is None and model.iap_head is None
    assert (model.config.ivlc_weight, model.config.tic.weight, model.config.iap.weight) == (1.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "change, message",
    [
        (("--shards", "{missing}/x-{000000..000001}.tar"), "no such shard file"),
        (("--shards", "EMPTY"), "no complete shards"),
        (("--losses", "ivlc,colour"), "unknown loss 'colour'"),
        (("--precision", "fp16"), "fp16 needs --device cuda"),
        (("--ids-per-batch", "0"), "--ids-per-batch: must be at least 1"),
        (("--model-overrides", "[1]"), "--model-overrides: must be a JSON object"),
        (("--eval-identities", "1-2"), "--eval-identities needs --eval-shards"),
        (("--resume", "{missing}"), "not a checkpoint folder"),
        (("--text-model", "{missing}"), "cannot load the text model"),
        (("--eval-shards", "{held_out}"), "--eval-shards: retrieval evaluation feeds 256x128 images"),
        (("--bogus", "1"), "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(inputs, tmp_path, capsys, change, message):
    (tmp_path / "EMPTY").mkdir()
    argv = flags(inputs, tmp_path / "out")
    name, value = change
    value = (
        value.replace("{missing}", str(tmp_path / "missing"))
        .replace("{held_out}", str(inputs.held_out))
        .replace("EMPTY", str(tmp_path / "EMPTY"))
    )
    if name in argv:
        argv[argv.index(name) + 1] = value
    else:
        argv += [name, value]
    code = exit_code(main, argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) <= 2  # argparse adds its usage line to a wrong flag


def test_ddp_two_cpu_processes_run_the_same_number_of_steps(inputs, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "plip.pretrain",
        *flags(inputs, out, "--max-steps", "2", "--checkpoint-every", "2"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = read_metrics(out)
    assert [m["step"] for m in metrics] == [1, 2]
    assert json.loads((out / "args.json").read_text())["world_size"] == 2
    assert (out / "checkpoints/step-00000002" / MODEL_FILE).is_file()


@pytest.fixture(scope="module")
def damaged(inputs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged") / "corpus"
    return folder, write_damaged_copy(inputs.corpus, folder)


def test_a_damaged_image_stops_training_in_one_line_or_is_skipped_and_counted(inputs, damaged, tmp_path, capsys):
    folder, key = damaged
    # Two workers, one per shard, no shuffle buffer: the damaged sample is the first its worker reads, and the two
    # steps of the run use one pass over each shard.
    argv = flags(inputs, tmp_path / "run", "--max-steps", "2", "--workers", "2", "--shuffle-buffer", "0")
    argv[argv.index("--shards") + 1] = str(folder)
    assert exit_code(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"synthpedes-000000.tar: sample '{key}': damaged jpg member" in err[0]
    assert exit_code(main, argv + ["--on-bad-sample", "skip"]) == 0
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2] and metrics[-1]["skipped_samples"] == 1


def test_a_damaged_image_without_workers_is_one_line_naming_shard_and_key(inputs, damaged, tmp_path, capsys):
    folder, key = damaged
    argv = flags(inputs, tmp_path / "run", "--max-steps", "2", "--shuffle-buffer", "0", "--steps-per-epoch", "6")
    argv[argv.index("--shards") + 1] = str(folder)
    assert exit_code(main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"python -m plip.pretrain: error: {folder / 'synthpedes-000000.tar'}: "
        f"sample '{key}': damaged jpg member (corrupt or unreadable image: "
    )
    assert err[0].endswith("); run `spac shards verify`")


@pytest.mark.parametrize("where", ["out", "parent", "checkpoints"])
def test_a_file_in_place_of_the_run_folder_is_one_line(inputs, tmp_path, capsys, where):
    blocker = {"out": tmp_path / "run", "parent": tmp_path / "runs", "checkpoints": tmp_path / "run" / "checkpoints"}
    blocker[where].parent.mkdir(parents=True, exist_ok=True)
    blocker[where].write_text("not a folder")
    out = tmp_path / "runs" / "run" if where == "parent" else tmp_path / "run"
    assert exit_code(main, flags(inputs, out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"python -m plip.pretrain: error: --out {out}: ")
    assert ("must be a folder, not a file" if where == "checkpoints" else "is in the way") in err[0]


def _damage_json(path, change):
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))


@pytest.mark.parametrize(
    "name, damage, message",
    [
        (OPTIMIZER_FILE, lambda p: p.write_bytes(b""), "not a readable torch checkpoint (empty file)"),
        (OPTIMIZER_FILE, lambda p: p.write_bytes(b"\x80\x02garbage"), "not a readable torch checkpoint ("),
        (OPTIMIZER_FILE, lambda p: torch.save({"state": {}, "param_groups": []}, p), "does not fit the optimizer"),
        (TRAINER_STATE_FILE, lambda p: p.write_text(p.read_text()[:40]), "not valid JSON"),
        (
            TRAINER_STATE_FILE,
            lambda p: _damage_json(p, lambda s: s["extra"]["rank_rng"][0].update(torch="!!")),
            "damaged resume state",
        ),
        (
            TRAINER_STATE_FILE,
            lambda p: _damage_json(p, lambda s: s["extra"].update(rank_rng=[])),
            "RNG states of 1 rank",
        ),
        (
            TRAINER_STATE_FILE,
            lambda p: _damage_json(p, lambda s: s["extra"]["scheduler"].update(lr_lambdas="x")),
            "damaged resume state (scheduler.lr_lambdas must be a list of 2, got str)",
        ),
        (
            TRAINER_STATE_FILE,
            lambda p: _damage_json(p, lambda s: s["extra"]["scheduler"].update(optimizer=1)),
            "damaged resume state (scheduler has unknown key(s) ['optimizer'])",
        ),
        (
            TRAINER_STATE_FILE,
            lambda p: _damage_json(p, lambda s: s["extra"]["scheduler"].update(base_lrs="x")),
            "scheduler.base_lrs must be a list",
        ),
        (TRAINER_STATE_FILE, lambda p: _damage_json(p, lambda s: s["extra"].pop("scheduler")), "damaged resume state"),
        (MODEL_FILE, lambda p: p.write_bytes(p.read_bytes()[:1000]), "not readable safetensors weights"),
    ],
)
def test_resume_from_a_damaged_checkpoint_is_one_line_naming_the_file(
    inputs, uninterrupted, tmp_path, capsys, name, damage, message
):
    out = tmp_path / "resumed"
    checkpoint = out / "checkpoints/step-00000002"
    shutil.copytree(uninterrupted / "checkpoints/step-00000002", checkpoint)
    damage(checkpoint / name)
    assert exit_code(main, flags(inputs, out, "--resume", image_size=EVAL_SIZE)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and err[0].startswith(f"python -m plip.pretrain: error: {checkpoint / name}")
        and message in err[0]
    ), err
    assert "weights_only" not in err[0] and not (out / "metrics.jsonl").exists()


# The pre-training program, run in a child process whose torch.save writes half of the second checkpoint's
# optimizer.pt and then SIGKILLs the process: a kill in the middle of writing a checkpoint.
_KILLED_WHILE_SAVING = """
import io, json, os, signal, sys
import torch
from plip.programs.pretrain import main

real_save = torch.save

def dying_save(obj, f, *args, **kwargs):
    if "step-00000004" in str(f):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        with open(f, "wb") as handle:
            handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

torch.save = dying_save
sys.exit(main(json.loads(sys.argv[1])))
"""


def test_killed_while_writing_a_checkpoint_resumes_from_the_previous_one_exactly(inputs, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    argv = flags(inputs, out, "--checkpoint-every", "2", image_size=EVAL_SIZE)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WHILE_SAVING, json.dumps(argv)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    folder = out / "checkpoints"
    # Killed inside the save of step 4: its files are half written under a name --resume never picks.
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000002", "step-00000004.partial"]
    assert (folder / "step-00000004.partial" / OPTIMIZER_FILE).stat().st_size > 0
    assert not (folder / "step-00000004.partial" / TRAINER_STATE_FILE).exists()
    assert [m["step"] for m in read_metrics(out)] == [1, 2, 3, 4]

    assert main(argv + ["--resume"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000002", "step-00000004"]
    assert train_losses(out) == train_losses(uninterrupted)  # bitwise: steps 3-4 redone from step 2
    state = json.loads((folder / "step-00000004" / TRAINER_STATE_FILE).read_text())
    assert state["step"] == 4
