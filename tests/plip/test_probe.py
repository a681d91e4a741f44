import pytest
import torch

from plip.losses import ivlc_loss
from plip.probe import LinearProbe, fold_probe, probe_loss
from tests.plip._tiny_model import single_thread, tiny_model  # noqa: F401  (single_thread: autouse fixture)


def test_the_probe_starts_as_the_identity():
    features = torch.randn(5, 16)
    assert torch.equal(LinearProbe(16)(features).detach(), features)
    texts, ids = torch.randn(5, 16), torch.tensor([0, 0, 1, 1, 2])
    assert float(probe_loss(LinearProbe(16), features, texts, ids).detach()) == pytest.approx(
        float(ivlc_loss(features, texts, ids))
    )
    with pytest.raises(ValueError, match="must be positive"):
        LinearProbe(0)


def test_folding_the_probe_into_the_image_encoder_gives_the_probed_embedding():
    model = tiny_model(seed=0, tic={"weight": 0}, iap={"weight": 0}).eval()
    probe = LinearProbe(model.embed_dim)
    with torch.no_grad():
        probe.linear.weight.add_(0.1 * torch.randn_like(probe.linear.weight))
        probe.linear.bias.normal_()
    images = torch.randn(3, 3, 64, 32)
    folded = fold_probe(model, probe)
    with torch.no_grad():
        assert torch.allclose(folded.encode_image(images), probe(model.encode_image(images)), atol=1e-5)
        tokens = model.tokenize(["a red coat"])
        assert torch.equal(folded.encode_text(**tokens), model.encode_text(**tokens))  # text side untouched
    assert not torch.equal(folded.image_encoder.attnpool.c_proj.weight, model.image_encoder.attnpool.c_proj.weight)
    with pytest.raises(ValueError, match="the probe takes 8-d features, the model gives 32"):
        fold_probe(model, LinearProbe(8))


def test_a_few_steps_on_frozen_features_lower_the_identity_loss():
    torch.manual_seed(0)
    ids = torch.arange(8).repeat_interleave(4)
    texts = torch.randn(8, 16)[ids] + 0.1 * torch.randn(32, 16)
    images = texts @ torch.randn(16, 16) + 0.1 * torch.randn(32, 16)  # the text space, mixed up
    probe = LinearProbe(16)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=1e-2, weight_decay=0)
    first = float(probe_loss(probe, images, texts, ids).detach())
    for _ in range(50):
        loss = probe_loss(probe, images, texts, ids)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(probe_loss(probe, images, texts, ids).detach()) < 0.5 * first
