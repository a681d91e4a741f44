import math

import numpy as np
import pytest
import torch

from plip.heads import AttributeHead, ColorizationHead
from plip.losses import PLIPLoss, iap_loss, ivlc_loss, tic_loss
from tests.plip._tiny_model import single_thread  # noqa: F401  (autouse fixture)


def _numpy_cmpm(image: np.ndarray, text: np.ndarray, ids: np.ndarray, norm: str) -> float:
    """An independent, loop-based statement of the identity-level CMPM loss."""
    match = (ids[:, None] == ids[None, :]).astype(np.float64)
    q = match / (match.sum(1, keepdims=True) if norm == "l1" else np.sqrt((match**2).sum(1, keepdims=True)))

    def one_direction(a: np.ndarray, b: np.ndarray) -> float:
        total = 0.0
        for i in range(len(a)):
            logits = np.array([a[i] @ (b[j] / np.linalg.norm(b[j])) for j in range(len(b))])
            p = np.exp(logits - logits.max())
            p /= p.sum()
            total += sum(p[j] * (math.log(p[j]) - math.log(q[i, j] + 1e-8)) for j in range(len(b)))
        return total / len(a)

    return one_direction(image, text) + one_direction(text, image)


def test_ivlc_two_by_two_by_hand() -> None:
    eye = torch.eye(2)
    # Each image projects 1 onto its own text and 0 onto the other: p = softmax([1, 0]); q = [1, 0].
    p_match, p_other = math.e / (math.e + 1), 1 / (math.e + 1)
    one_row = p_match * math.log(p_match / (1 + 1e-8)) + p_other * math.log(p_other / 1e-8)
    loss = ivlc_loss(eye, eye, torch.tensor([7, 9]))
    assert loss.item() == pytest.approx(2 * one_row, rel=1e-5)


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_ivlc_matches_independent_formula(norm: str) -> None:
    rng = np.random.default_rng(3)
    image, text = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    ids = np.array([1, 1, 2, 3, 3])
    loss = ivlc_loss(torch.tensor(image), torch.tensor(text), torch.tensor(ids), target_norm=norm)
    assert loss.item() == pytest.approx(_numpy_cmpm(image, text, ids, norm), rel=1e-6)


def test_ivlc_is_lower_when_same_identity_pairs_align() -> None:
    ids = torch.tensor([0, 0, 1, 1])
    aligned = torch.tensor([[5.0, 0], [5.0, 0], [0, 5.0], [0, 5.0]])
    assert ivlc_loss(aligned, aligned, ids) < ivlc_loss(aligned, aligned.flip(0), ids)


def test_ivlc_rejects_mismatched_batches() -> None:
    with pytest.raises(ValueError, match="batch sizes differ"):
        ivlc_loss(torch.zeros(3, 2), torch.zeros(2, 2), torch.zeros(3))


def test_iap_is_cross_entropy_by_hand_and_zero_when_nothing_masked() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 2)) - math.log(math.e / (math.e + 2))) / 2
    assert iap_loss(logits, torch.tensor([0, 1])).item() == pytest.approx(expected, rel=1e-6)
    empty = torch.zeros(0, 3, requires_grad=True)
    zero = iap_loss(empty, torch.zeros(0, dtype=torch.long))
    assert zero.item() == 0.0 and zero.requires_grad


def test_tic_is_mean_squared_error() -> None:
    assert tic_loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]])).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="colorized"):
        tic_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 8, 8))


def test_colorization_head_restores_full_resolution_and_learns_a_fixed_target() -> None:
    torch.manual_seed(0)
    head = ColorizationHead([8, 16, 32, 64], text_dim=6, channels=16, se_reduction=4)
    features = [torch.randn(2, c, 16 // 2**i, 8 // 2**i) for i, c in enumerate([8, 16, 32, 64])]
    text, target = torch.randn(2, 6), torch.rand(2, 3, 64, 32)
    assert head(features, text).shape == (2, 3, 64, 32)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = tic_loss(head(features, text), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_attribute_head_scores_only_masked_tokens() -> None:
    torch.manual_seed(0)
    head = AttributeHead(hidden_size=8, image_dim=4, vocab_size=11, heads=2)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 3], labels[1, 4] = 3, 7, 2
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    logits, kept = head(torch.randn(2, 5, 8), torch.randn(2, 4), mask, labels)
    assert logits.shape == (3, 11) and kept.tolist() == [3, 7, 2]


def test_plip_loss_weights_and_switches_terms() -> None:
    outputs = {
        "image_features": torch.eye(2),
        "text_features": torch.eye(2),
        "identity_ids": torch.tensor([0, 1]),
        "colorized": torch.ones(1, 3, 2, 2),
        "color_target": torch.zeros(1, 3, 2, 2),
        "attribute_logits": torch.tensor([[0.0, 0.0]]),
        "attribute_labels": torch.tensor([1]),
    }
    terms = PLIPLoss()(**outputs)
    assert terms["ivlc_loss"].item() == pytest.approx(
        ivlc_loss(torch.eye(2), torch.eye(2), torch.tensor([0, 1])).item()
    )
    assert terms["tic_loss"].item() == pytest.approx(0.02)
    assert terms["iap_loss"].item() == pytest.approx(0.1 * math.log(2))
    only_ivlc = PLIPLoss(tic_weight=0, iap_weight=0)
    assert set(only_ivlc(**{k: outputs[k] for k in ("image_features", "text_features", "identity_ids")})) == {
        "ivlc_loss"
    }
    with pytest.raises(ValueError, match="tic loss is on .* lack \\['colorized'"):
        PLIPLoss(iap_weight=0)(**{k: v for k, v in outputs.items() if k != "colorized"})
