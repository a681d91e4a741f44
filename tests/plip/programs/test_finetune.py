import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from plip.checkpoint import load_checkpoint_model, load_training_state, save_checkpoint
from plip.cmpc import IdentityClassifier
from plip.programs import dataset_split, finetune, zero_shot
from plip.programs.finetune import CLASSIFIER_FILE, FineTuning, main, train_step
from plip.programs.finetune_data import PairDataset, collate_pairs, load_train_entries, train_pairs
from plip.programs.schedule import warmup_step_decay
from plip.programs.training import build_optimizer
from tests.plip._tiny_model import single_thread, tiny_model  # noqa: F401  (autouse fixture)
from tests.plip.pedes_fixtures import dataset_fixture, make_entries, rstpreid_fixture
from tests.plip.programs._exit import exit_code

SPLITS = {0: "train", 1: "train", 2: "train", 3: "train", 4: "test", 5: "val"}


dataset = dataset_fixture(SPLITS)


@pytest.fixture(scope="module")
def start_checkpoint(tmp_path_factory):
    """A tiny pre-trained-format checkpoint at the evaluation's 256x128, TIC / IAP heads included."""
    return save_checkpoint(tmp_path_factory.mktemp("start") / "ckpt", tiny_model(vision={"image_size": [256, 128]}))


def test_steps_on_a_fixed_batch_lower_cmpm_and_cmpc(dataset):
    entries, _ = load_train_entries("CUHK-PEDES", dataset)
    pairs = train_pairs(entries, dataset / "imgs")
    batch = collate_pairs([PairDataset(pairs, (64, 32))[(i, False)] for i in range(0, 16, 2)])
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0}).train()
    for module in model.modules():  # dropout noise would blur a short trend on one batch
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    classifier = IdentityClassifier(4, model.embed_dim)
    optimizer = build_optimizer(model, 1e-3, 1.0, 0.0)
    optimizer.add_param_group({"params": list(classifier.parameters()), "lr": 3e-2, "name": "classifier"})
    tuning = FineTuning(
        model, classifier, optimizer, warmup_step_decay(optimizer, 0, []), torch.device("cpu"), "fp32", 5.0, 1.0
    )
    losses = [train_step(tuning, batch) for _ in range(10)]
    for name in ("loss", "cmpm_loss", "cmpc_loss"):
        assert losses[-1][name] < 0.9 * losses[0][name], name


def _run_argv(start_checkpoint, dataset, out, *extra: str) -> list[str]:
    """The short fine-tune of these tests: 16 pairs in batches of 8, 2 steps per epoch, 8 epochs, the rate
    halved from step 12 on."""
    return [
        "--checkpoint",
        str(start_checkpoint),
        "--dataset",
        "CUHK-PEDES",
        "--root",
        str(dataset),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--pairs-per-id",
        "2",
        "--epochs",
        "8",
        "--lr",
        "1e-3",
        "--milestones",
        "6",
        "--gamma",
        "0.5",
        "--log-every",
        "1",
        "--eval-every-epochs",
        "3",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def run_dir(dataset, start_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("finetune") / "run"
    assert main(_run_argv(start_checkpoint, dataset, out)) == 0
    return out


def test_a_short_fine_tune_lowers_the_loss_and_logs_evaluations(run_dir):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [m["loss"] for m in lines if m["kind"] == "train"]
    assert len(train) == 16  # 16 pairs / batches of 8, 8 epochs
    assert sum(train[-4:]) < 0.8 * sum(train[:4])
    evals = [m for m in lines if m["kind"] == "eval"]
    assert [(m["step"], m["epoch"]) for m in evals] == [(6, 3.0), (12, 6.0), (16, 8.0)]
    assert all(m["split"] == "test" and m["queries"] == 4 for m in evals)  # identity 4's two images x 2 captions
    args = json.loads((run_dir / "args.json").read_text())
    assert (args["train_pairs"], args["train_identities"], args["total_steps"]) == (16, 4, 16)


def test_checkpoints_load_in_zero_shot_and_last_keeps_the_training_state(run_dir, dataset, tmp_path):
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    best_r1 = max(m["R@1"] for m in lines if m["kind"] == "eval")
    report = tmp_path / "zero_shot.json"
    assert (
        zero_shot.main(
            [
                "--checkpoint",
                str(run_dir / "best"),
                "--dataset",
                "CUHK-PEDES",
                "--root",
                str(dataset),
                "--device",
                "cpu",
                "--quiet",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    metrics = json.loads(report.read_text())["metrics"]
    assert metrics["R@1"] == pytest.approx(best_r1)
    assert metrics == pytest.approx(load_training_state(run_dir / "best").extra["eval"])
    best = load_checkpoint_model(run_dir / "best", "cpu")
    assert best.tic_head is None and best.iap_head is None  # pre-training heads left behind
    state = load_training_state(run_dir / "last")
    assert state.step == 16 and state.epoch == 8 and "scheduler" in state.extra
    classifier = IdentityClassifier(4, best.embed_dim)
    safetensors.torch.load_model(classifier, str(run_dir / "last" / CLASSIFIER_FILE))


@pytest.mark.parametrize(
    "change, message",
    [
        (("--root", "{missing}"), "not a folder"),
        (("--root", "{empty}"), "neither CUHK-PEDES-train.json nor reid_raw.json found"),
        (("--root", "{no_images}"), "training entry 0: image not found"),
        (("--dataset", "MARKET"), "invalid choice: 'MARKET'"),
        (("--dataset", "RSTPReid"), "neither RSTPReid-train.json nor data_captions.json found"),
        (("--pairs-per-id", "3"), "must be a multiple of --pairs-per-id 3"),
        (("--checkpoint-every", "0"), "--checkpoint-every: must be at least 1"),
        (("--checkpoint", "{missing}"), "checkpoint not found"),
        (("--checkpoint", "{small}"), "evaluation feeds 256x128"),
        (("--checkpoint", None), "give --checkpoint"),
        (("--preset", "RN99"), "--preset: invalid choice: 'RN99'"),
        (("--device", "tpu"), "--device: invalid device 'tpu'"),
        (("--milestones", "5,2"), "--milestones: must be increasing positive epochs"),
        (("--bogus", "1"), "unrecognized arguments"),
        (("--out", "{file}"), "--out {file}: a file is in the way"),
        (("--out", "{file}/run"), "--out {file}/run: a file ({file}) is in the way"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(dataset, start_checkpoint, tmp_path, capsys, change, message):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_images").mkdir()
    (tmp_path / "no_images" / "reid_raw.json").write_text(json.dumps(make_entries(SPLITS)))
    small = save_checkpoint(tmp_path / "small", tiny_model(tic={"weight": 0}, iap={"weight": 0}))  # 64x32 input
    values = {
        "missing": str(tmp_path / "missing"),
        "empty": str(tmp_path / "empty"),
        "no_images": str(tmp_path / "no_images"),
        "small": str(small),
        "file": str(tmp_path / "file"),
    }
    argv = [
        "--checkpoint",
        str(start_checkpoint),
        "--dataset",
        "CUHK-PEDES",
        "--root",
        str(dataset),
        "--out",
        str(tmp_path / "out"),
        "--batch-size",
        "4",
        "--pairs-per-id",
        "2",
        "--quiet",
    ]
    name, value = change
    if name not in argv:
        argv += [name, value]
    elif value is None:
        del argv[argv.index(name) : argv.index(name) + 2]
    else:
        argv[argv.index(name) + 1] = value.format(**values)
    assert exit_code(main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(**values) in err and len(err.splitlines()) <= 2  # argparse adds a usage line to a wrong flag


def _metric_lines(run: Path, kind: str) -> list[dict]:
    """metrics.jsonl lines of one kind, without the wall-clock throughput."""
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k != "samples_per_s"} for m in lines if m["kind"] == kind]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return {
        **safetensors.torch.load_file(str(run / "last" / "model.safetensors")),
        **safetensors.torch.load_file(str(run / "last" / CLASSIFIER_FILE)),
    }


def test_a_run_stopped_mid_epoch_and_resumed_matches_the_uninterrupted_run(
    run_dir, dataset, start_checkpoint, tmp_path
):
    out = tmp_path / "run"
    assert main(_run_argv(start_checkpoint, dataset, out, "--max-steps", "5", "--checkpoint-every", "5")) == 0
    state = load_training_state(out / "last")
    assert (state.step, state.data_position) == (5, {"epoch": 2, "batch": 1})
    assert main(_run_argv(start_checkpoint, dataset, out, "--resume")) == 0
    assert _metric_lines(out, "train") == _metric_lines(run_dir, "train")  # losses and rates, bit for bit
    # The stopped run's closing evaluation at step 5 stays; every later one is the uninterrupted run's.
    assert _metric_lines(out, "eval")[0]["step"] == 5
    assert _metric_lines(out, "eval")[1:] == _metric_lines(run_dir, "eval")
    resumed, uninterrupted = _weights(out), _weights(run_dir)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def test_a_crash_resumes_from_the_last_periodic_checkpoint_and_its_partial_log_window(
    dataset, start_checkpoint, tmp_path, monkeypatch
):
    short = ("--epochs", "4", "--log-every", "2")
    reference, out = tmp_path / "reference", tmp_path / "run"
    assert main(_run_argv(start_checkpoint, dataset, reference, *short)) == 0
    real_step, calls = finetune.train_step, []

    def crash_at_step_5(tuning, batch):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_step(tuning, batch)

    monkeypatch.setattr(finetune, "train_step", crash_at_step_5)
    argv = _run_argv(start_checkpoint, dataset, out, *short, "--checkpoint-every", "3")
    assert main(argv) == 130
    assert [m["step"] for m in _metric_lines(out, "train")] == [2, 4]
    assert load_training_state(out / "last").step == 3  # mid logging window: step 3 of the line at step 4
    monkeypatch.setattr(finetune, "train_step", real_step)
    assert main(argv + ["--resume"]) == 0
    assert _metric_lines(out, "train") == _metric_lines(reference, "train")
    assert _metric_lines(out, "eval") == _metric_lines(reference, "eval")


@pytest.mark.parametrize(
    "change, key",
    [(("--batch-size", "4"), "batch_size"), (("--seed", "1"), "seed"), (("--pairs-per-id", "4"), "pairs_per_id")],
)
def test_resume_with_a_different_data_flag_is_refused_in_one_line(
    run_dir, dataset, start_checkpoint, tmp_path, capsys, change, key
):
    out = shutil.copytree(run_dir, tmp_path / "run")
    log = (out / "metrics.jsonl").read_text()
    # The later of two equal flags wins in argparse; a longer --epochs alone would be accepted.
    assert exit_code(main, _run_argv(start_checkpoint, dataset, out, "--resume", "--epochs", "9", *change)) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot resume from {out / 'last'}: {key} was " in err and len(err.splitlines()) == 1
    assert (out / "metrics.jsonl").read_text() == log  # refused before touching the run


def test_resume_without_a_last_checkpoint_starts_fresh_and_says_so(dataset, start_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    argv = _run_argv(start_checkpoint, dataset, out, "--resume", "--max-steps", "1")
    assert main(argv) == 0
    err = capsys.readouterr().err.strip()
    assert "starting fresh" in err and len(err.splitlines()) == 1
    assert load_training_state(out / "last").step == 1


@pytest.mark.parametrize(
    "name, damage, message",
    [
        ("optimizer.pt", lambda p: p.write_bytes(b""), "not a readable torch checkpoint (empty file)"),
        (CLASSIFIER_FILE, lambda p: p.unlink(), "not a PLIP checkpoint directory (missing classifier.safetensors)"),
        (CLASSIFIER_FILE, lambda p: p.write_bytes(p.read_bytes()[:50]), "not readable safetensors weights"),
        (
            "trainer_state.json",
            lambda p: p.write_text(p.read_text().replace('"window": {', '"window": {"x": 1, ')),
            "damaged resume state (window has unknown key(s) ['x'])",
        ),
        (
            "trainer_state.json",
            lambda p: p.write_text(
                p.read_text().replace('"data_position": {"epoch": ', '"data_position": {"epoch": -')
            ),
            "damaged resume state (data_position",
        ),
    ],
)
def test_resume_from_a_damaged_last_checkpoint_is_one_line_naming_the_file(
    run_dir, dataset, start_checkpoint, tmp_path, capsys, name, damage, message
):
    out = shutil.copytree(run_dir, tmp_path / "run")
    damage(out / "last" / name)
    assert exit_code(main, _run_argv(start_checkpoint, dataset, out, "--resume", "--epochs", "9")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    path = out / "last" if "missing" in message else out / "last" / name
    assert len(err) == 1 and err[0].startswith(f"python -m plip.finetune: error: {path}") and message in err[0], err


def test_resume_after_a_crash_between_the_checkpoint_swap_renames(run_dir, dataset, start_checkpoint, tmp_path, capsys):
    out = shutil.copytree(run_dir, tmp_path / "run")
    # Killed inside save_checkpoint, after last/ became last.old/ and before last.partial/ became last/.
    (out / "last").rename(out / "last.old")
    (out / "last.partial").mkdir()
    assert main(_run_argv(start_checkpoint, dataset, out, "--resume", "--epochs", "9")) == 0
    assert "starting fresh" not in capsys.readouterr().err
    assert load_training_state(out / "last").step == 18  # 16 steps done + the 2 of epoch 9
    assert not (out / "last.old").exists() and not (out / "last.partial").exists()


rstpreid = rstpreid_fixture(SPLITS)  # 5 images x 2 captions per identity, as RSTPReid has


def test_a_few_steps_on_rstpreid_split_by_dataset_split(rstpreid, start_checkpoint, tmp_path):
    root = shutil.copytree(rstpreid, tmp_path / "RSTPReid")
    assert dataset_split.main(["--input", str(root / "data_captions.json"), "--quiet"]) == 0
    (root / "data_captions.json").unlink()  # the run reads RSTPReid-train.json and RSTPReid-valid.json
    out = tmp_path / "run"
    argv = [
        "--checkpoint",
        str(start_checkpoint),
        "--dataset",
        "RSTPReid",
        "--root",
        str(root),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--pairs-per-id",
        "2",
        "--epochs",
        "1",
        "--max-steps",
        "3",
        "--lr",
        "1e-3",
        "--log-every",
        "1",
        "--eval-split",
        "valid",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
    ]
    assert main(argv) == 0
    args = json.loads((out / "args.json").read_text())
    sizes = (args["dataset"], args["train_pairs"], args["train_identities"], args["total_steps"])
    assert sizes == ("RSTPReid", 40, 4, 3)
    assert args["eval_queries"] == 10 and args["eval_gallery"] == 5  # identity 5 (split "val")
    train = _metric_lines(out, "train")
    assert [m["step"] for m in train] == [1, 2, 3] and all(m["loss"] > 0 for m in train)
    [evaluation] = _metric_lines(out, "eval")
    assert (evaluation["step"], evaluation["split"], evaluation["queries"]) == (3, "valid", 10)
    report = tmp_path / "zero_shot.json"
    assert (
        zero_shot.main(
            [
                "--checkpoint",
                str(out / "best"),
                "--dataset",
                "RSTPReid",
                "--root",
                str(root),
                "--split",
                "valid",
                "--device",
                "cpu",
                "--quiet",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    assert json.loads(report.read_text())["metrics"]["R@1"] == pytest.approx(evaluation["R@1"])


def test_help_names_every_dataset(capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Fine-tune PLIP on CUHK-PEDES, ICFG-PEDES, RSTPReid with" in out
    assert "--dataset {CUHK-PEDES,ICFG-PEDES,RSTPReid}" in out
    assert "reid_raw.json / ICFG_PEDES.json / data_captions.json" in out
