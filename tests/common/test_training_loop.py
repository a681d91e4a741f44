"""The step loop both spac trainers run, on a tiny regression: settings checks, the batch order (moved from
tests/spac/predictor/test_training.py with EpochBatches), an exact resume and its refusals, validation keeping the
best weights with early stopping, and the run's record."""

from dataclasses import dataclass, replace

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from common.errors import InputError
from common.training import optimizer_step
from common.training_loop import (
    STATE_FILE,
    EpochBatches,
    LoopResult,
    check_loop_settings,
    load_state,
    loop_fingerprint,
    loop_record,
    run_loop,
)


@dataclass(frozen=True)
class Settings:  # the loop's settings in alphabetical order, plus two of this test's
    batch_size: int = 2
    checkpoint_every: int = 0
    clip_grad: float = 0.0
    eval_every: int = 0
    lr: float = 1e-1
    patience: int = 0
    precision: str = "fp32"
    seed: int = 0
    shuffle: bool = True
    steps: int = 6
    weight_decay: float = 0.0
    width: int = 2
    workers: int = 0

    def __post_init__(self) -> None:
        check_loop_settings(self, minimums=(("width", 2),), non_negative=("clip_grad",))


class Points(Dataset):
    """y = 3x - 1 at seven points, indexed by (epoch, index)."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.tensor([key[1] / 7])
        return x, 3 * x - 1


def _step(model):
    def train_batch(batch, optimizer, scaler):
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y)
        optimizer_step(loss, optimizer, scaler)
        return float(loss.detach())

    return train_batch


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.2), nn.Linear(4, 1))  # dropout: torch's generator matters


def _run(model, settings, score=None, train_batch=None, **kwargs):
    fingerprint, generator = loop_fingerprint(settings, 7, 0), torch.Generator().manual_seed(settings.seed)
    step = train_batch or _step(model)
    return run_loop(model, Points(), settings, fingerprint, step, score, generator=generator, **kwargs)


def test_epoch_batches_cover_each_epoch_once_and_start_anywhere():
    batches = list(EpochBatches(5, 2, 6, seed=3))
    positions = [key for batch in batches for key in batch]
    assert len(batches) == 6 and len(positions) == 12
    assert sorted(i for e, i in positions if e == 0) == [0, 1, 2, 3, 4]
    assert [i for e, i in positions if e == 0] != [0, 1, 2, 3, 4] or [i for e, i in positions if e == 1] != [
        0,
        1,
        2,
        3,
        4,
    ]
    assert list(EpochBatches(5, 2, 6, seed=3, start_step=4)) == batches[4:]
    assert [k for b in EpochBatches(3, 2, 2, seed=0, shuffle=False) for k in b] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    with pytest.raises(ValueError, match="no training examples"):
        EpochBatches(0, 2, 2, seed=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": 0}, "^steps must be at least 1, got 0$"),
        ({"checkpoint_every": -1}, "^checkpoint_every must be at least 0, got -1$"),
        ({"width": 1}, "^width must be at least 2, got 1$"),
        ({"lr": 0.0}, "^lr must be a positive number, got 0.0$"),
        ({"lr": float("inf")}, "^lr must be a positive number, got inf$"),
        ({"weight_decay": float("nan")}, "^weight_decay must be a number >= 0, got nan$"),
        ({"clip_grad": -1.0}, "^clip_grad must be a number >= 0, got -1.0$"),
        ({"precision": "fp8"}, "^precision must be one of fp32, bf16, fp16, got 'fp8'$"),
        ({"patience": 2}, r"^patience \(early stopping\) needs eval_every > 0$"),
    ],
)
def test_bad_loop_settings_are_one_line(changes, message):
    with pytest.raises(InputError, match=message):
        Settings(**changes)


def test_the_fingerprint_leaves_the_worker_count_out_and_adds_the_data():
    fingerprint = loop_fingerprint(Settings(workers=3), 7, 2, balanced=True)
    assert "workers" not in fingerprint and fingerprint["lr"] == 0.1
    assert (fingerprint["examples"], fingerprint["validation_examples"], fingerprint["balanced"]) == (7, 2, True)


def test_a_resumed_run_continues_exactly_and_refuses_other_settings(tmp_path):
    settings = Settings(checkpoint_every=2)
    straight = _model()
    _run(straight, settings)

    class Killed(Exception):
        pass

    halted = _model()
    real, calls = _step(halted), []

    def killed_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise Killed
        return real(*args)

    with pytest.raises(Killed):
        _run(halted, settings, train_batch=killed_at_step_5, checkpoint_dir=tmp_path)
    assert load_state(tmp_path)["step"] == 4
    torch.manual_seed(99)  # whatever the generator's state before: the checkpoint's replaces it
    resumed = _model(seed=5)
    result = _run(resumed, settings, checkpoint_dir=tmp_path, resume=True)
    assert result.steps == 6 and not result.validated
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())
    with pytest.raises(InputError, match="^cannot resume from .*: lr was 0.1, now 0.2; resume with the same data"):
        _run(_model(), replace(settings, lr=0.2), checkpoint_dir=tmp_path, resume=True)


def test_a_missing_state_starts_afresh_and_a_damaged_or_older_one_is_one_line(tmp_path):
    assert _run(_model(), Settings(steps=1), checkpoint_dir=tmp_path, resume=True).steps == 1
    (tmp_path / STATE_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable training state"):
        _run(_model(), Settings(steps=1), checkpoint_dir=tmp_path, resume=True)
    torch.save({"step": 1, "torch_rng": torch.get_rng_state()}, tmp_path / STATE_FILE)
    with pytest.raises(InputError, match="written by an older version of the trainer; train afresh without --resume"):
        _run(_model(), Settings(steps=1), checkpoint_dir=tmp_path, resume=True)


def test_validation_keeps_the_best_weights_stops_early_and_a_stopped_run_stays_finished(tmp_path):
    losses, snapshots = iter([5.0, 4.0, 4.5, 4.6, 1.0]), {}
    model = _model()

    def score():
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"loss": next(losses)}

    settings = Settings(steps=20, eval_every=1, patience=2, checkpoint_every=5)
    result = _run(model, settings, score, checkpoint_dir=tmp_path)
    assert result.steps == 4 and result.validated and result.tracking["stopped"]
    assert [h["step"] for h in result.tracking["history"]] == [1, 2, 3, 4]
    assert all(torch.equal(v, snapshots[2][k]) for k, v in model.state_dict().items())  # the best one is kept
    assert load_state(tmp_path)["step"] == 4  # the stop is saved
    again = _run(_model(), settings, score, checkpoint_dir=tmp_path, resume=True)
    assert again.steps == 4 and again.tracking["best_step"] == 2  # nothing more to do
    assert not _run(_model(), Settings(steps=2), score).validated  # no eval_every: never scored


def test_the_record_says_how_the_run_was_trained():
    tracking = {"best_step": 2, "best_loss": 0.5, "stopped": True, "history": [{"step": 2, "loss": 0.5}]}
    settings = Settings(steps=4, batch_size=3)
    record = loop_record(LoopResult(4, 2.0, True, tracking), settings, "images", augment="flip")
    assert record == {
        "steps": 4,
        "batch_size": 3,
        "lr": 0.1,
        "images": 12,
        "seconds": 2.0,
        "images_per_second": 6.0,
        "seed": 0,
        "augment": "flip",
        "precision": "fp32",
        "best_step": 2,
        "best_validation_loss": 0.5,
        "stopped_early": True,
        "history": [{"step": 2, "loss": 0.5}],
    }
    assert list(record)[6:9] == ["seed", "augment", "precision"]
    plain = loop_record(LoopResult(4, 0.0, False, tracking), settings, "captions")
    assert plain["captions_per_second"] == 0.0 and "best_step" not in plain
