import pytest
import torch

from plip.programs.schedule import lr_factor, warmup_step_decay


def test_linear_warmup_then_decay_by_gamma_at_each_milestone():
    factors = [lr_factor(step, warmup_steps=4, milestones=[6, 8], gamma=0.1) for step in range(10)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4:6] == pytest.approx([1.0, 1.0])
    assert factors[6:8] == pytest.approx([0.1, 0.1])
    assert factors[8:] == pytest.approx([0.01, 0.01])
    assert lr_factor(0, warmup_steps=0, milestones=[]) == 1.0


def test_scheduler_keeps_each_groups_base_rate():
    weights = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW([{"params": [weights[0]], "lr": 1.0}, {"params": [weights[1]], "lr": 0.1}])
    scheduler = warmup_step_decay(optimizer, warmup_steps=2, milestones=[3])
    seen = []
    for _ in range(4):
        seen.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen == [pytest.approx(v) for v in ([0.5, 0.05], [1.0, 0.1], [1.0, 0.1], [0.1, 0.01])]


@pytest.mark.parametrize(
    "warmup, milestones, gamma, message",
    [
        (-1, [], 0.1, "warm-up"),
        (0, [5, 3], 0.1, "milestones"),
        (0, [0], 0.1, "milestones"),
        (0, [], 0.0, "gamma"),
    ],
)
def test_bad_schedules_are_refused(warmup, milestones, gamma, message):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match=message):
        warmup_step_decay(optimizer, warmup, milestones, gamma)
