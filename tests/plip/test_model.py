import random
import re

import pytest
import torch

from plip.config import VisionConfig
from plip.factory import create_model, get_config
from plip.image_encoder import ModifiedResNet
from plip.losses import PLIPLoss
from plip.masking import mask_batch
from plip.model import to_grayscale
from tests.plip._tiny_model import single_thread, tiny_model  # noqa: F401  (autouse fixture)

# Key patterns of the released ImgEncoder_state_dict (shared/REFERENCE.md section 4).
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
RELEASED_IMAGE_KEY = re.compile(
    rf"^(conv[123]\.weight|bn[123]\.{_BN}"
    rf"|layer[1-4]\.\d+\.(conv[123]\.weight|bn[123]\.{_BN})"
    rf"|layer[1-4]\.0\.downsample\.(0\.weight|1\.{_BN})"
    r"|attnpool\.(positional_embedding|[qkv]_proj\.(weight|bias)|c_proj\.(weight|bias)))$"
)


def test_rn50_matches_the_released_image_encoder_layout() -> None:
    with torch.device("meta"):
        encoder = ModifiedResNet(get_config("RN50").vision)
    state = encoder.state_dict()
    assert len(state) == 339
    assert round(sum(p.numel() for p in encoder.parameters()) / 1e6, 2) == 37.76
    assert all(RELEASED_IMAGE_KEY.match(key) for key in state), [k for k in state if not RELEASED_IMAGE_KEY.match(k)]
    assert state["attnpool.positional_embedding"].shape == (33, 2048)
    for name in "qkv":
        assert state[f"attnpool.{name}_proj.weight"].shape == (2048, 2048)
    assert state["attnpool.c_proj.weight"].shape == (768, 2048)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["layer4.0.downsample.1.running_var"].shape == (2048,)
    assert sum(key.endswith("downsample.0.weight") for key in state) == 4


def test_image_encoder_returns_embedding_and_four_stage_maps() -> None:
    torch.manual_seed(0)
    config = VisionConfig(layers=(1, 1, 1, 1), width=8, heads=2, output_dim=12, image_size=(64, 32))
    encoder = ModifiedResNet(config)
    out = encoder(torch.randn(2, 3, 64, 32))
    assert out.embedding.shape == (2, 12)
    assert [tuple(f.shape) for f in out.features] == [
        (2, c, 64 // s, 32 // s) for c, s in zip(encoder.stage_channels, (4, 8, 16, 32))
    ]
    with pytest.raises(ValueError, match="positional embedding of 2 positions"):
        encoder(torch.randn(1, 3, 128, 64))


def test_text_pooling_projection_and_padding_independence() -> None:
    model = tiny_model(vision={"output_dim": 48}).eval()
    assert model.text_encoder.proj is not None and model.text_encoder.proj.out_features == 48
    assert tiny_model().text_encoder.proj is None  # sizes equal: no projection, as in the release
    tokens = model.tokenize(["a man in a red shirt", "a woman"])
    assert tokens["input_ids"].shape == (2, 64) and tokens["attention_mask"][1].sum() == 4
    with torch.no_grad():
        base = model.text_encoder(tokens["input_ids"], tokens["attention_mask"])
        hidden = base.hidden_states
        weights = tokens["attention_mask"].unsqueeze(-1).float()
        by_hand = model.text_encoder.proj((hidden * weights).sum(1) / weights.sum(1))
        garbage = tokens["input_ids"].masked_fill(tokens["attention_mask"] == 0, 1999)
        again = model.encode_text(garbage, tokens["attention_mask"])
    torch.testing.assert_close(base.embedding, by_hand)
    torch.testing.assert_close(again, base.embedding, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="list of captions"):
        model.tokenize("a man")


def test_forward_outputs_feed_the_losses_and_every_part_gets_gradients() -> None:
    model = tiny_model()
    texts = ["a man in a red shirt and blue jeans", "a woman with black hair and a white bag"]
    batch = mask_batch(texts, model.tokenizer, progress=1.0, rng=random.Random(0))
    batch |= {"images": torch.randn(2, 3, 64, 32), "identity_ids": torch.tensor([3, 3])}
    outputs = model(batch)
    assert outputs["image_features"].shape == outputs["text_features"].shape == (2, 32)
    assert outputs["colorized"].shape == outputs["color_target"].shape == (2, 3, 64, 32)
    masked = int((batch["mlm_labels"] != -100).sum())
    assert masked > 0 and outputs["attribute_logits"].shape == (masked, 30522)
    terms = PLIPLoss.from_config(model.config)(**outputs)
    assert set(terms) == {"ivlc_loss", "tic_loss", "iap_loss"}
    sum(terms.values()).backward()
    for part in (
        model.image_encoder.conv1,
        model.text_encoder.encoder.embeddings,
        model.tic_head.up2,
        model.iap_head.vocab,
    ):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_switched_off_tasks_build_no_heads_and_need_no_extra_inputs() -> None:
    model = tiny_model(tic={"weight": 0}, iap={"weight": 0})
    assert model.tic_head is None and model.iap_head is None
    batch = model.tokenize(["a man"]) | {"images": torch.randn(1, 3, 64, 32), "identity_ids": torch.tensor([0])}
    assert set(model(batch)) == {"image_features", "text_features", "identity_ids"}
    with pytest.raises(ValueError, match="IAP is on but the batch lacks mlm_input_ids"):
        tiny_model(tic={"weight": 0})(batch)


def test_grayscale_is_luma_on_three_channels() -> None:
    images = torch.rand(2, 3, 4, 4)
    gray = to_grayscale(images)
    assert gray.shape == images.shape
    torch.testing.assert_close(gray[:, 1], 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2])


def test_minilm_preset_loads_offline_with_pretrained_weights() -> None:
    torch.manual_seed(0)
    model = create_model("RN-tiny", vision={"image_size": [64, 32]}, tic={"weight": 0}, iap={"weight": 0}).eval()
    assert model.text_encoder.hidden_size == 384 and model.text_encoder.proj is None
    with torch.no_grad():
        texts = model.tokenize(["a man in a red shirt", "a guy wearing a red top", "stock markets fell sharply"])
        emb = torch.nn.functional.normalize(model.encode_text(**texts), dim=1)
    # Pretrained sentence embeddings: the paraphrase is far closer than the unrelated sentence.
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3
