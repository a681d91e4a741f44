"""The captioner model: branches and heads, the two losses (unknown labels masked), the style encoders, batched
greedy and seeded generation, and a transformers image backbone by local path."""

import pytest
import torch
from PIL import Image
from transformers import ViTConfig, ViTModel

from spac.neural_captioner.model import SENTENCE, attribute_loss, build_captioner, stripes
from tests.spac.neural_captioner.tiny import SMALL, tiny_captioner, tiny_config, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_captioner(tokenizer).eval()  # no dropout: the same batch gives the same losses


def _batch(tokenizer, texts):
    rows = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    width = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.eos_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return ids, mask


def _pixels(count, seed=0):
    return torch.randn(count, 3, *SMALL, generator=torch.Generator().manual_seed(seed))


def test_one_branch_per_group_plus_the_sentence_and_a_head_per_group(model):
    assert list(model.prefix.branches) == [*model.config.groups, SENTENCE]
    assert {g: head.out_features for g, head in model.prefix.heads.items()} == {
        g: len(labels) for g, labels in model.config.labels.items()
    }
    prefixes, logits = model.encode(_pixels(3))
    assert prefixes.shape == (3, model.config.prefix_tokens, model.generator.config.n_embd)
    assert len(model.styles) == 2 and set(logits) == set(model.config.groups)


def test_stripes_pool_a_feature_map_and_a_token_sequence_top_to_bottom():
    image = torch.arange(4.0).view(1, 1, 4, 1).expand(1, 2, 4, 3)  # rows 0..3, two channels
    assert stripes(image, 2).tolist() == [[0.5, 0.5, 2.5, 2.5]]
    tokens = image.flatten(2).transpose(1, 2)  # raster order [1, 12, 2]
    assert stripes(tokens, 2).tolist() == [[0.5, 0.5, 2.5, 2.5]]


def test_the_loss_is_the_caption_loss_plus_015_times_the_masked_attribute_loss(model, tokenizer):
    ids, mask = _batch(tokenizer, ["a red shirt.", "a man in blue jeans and a black coat."])
    unknown = torch.full((2, 6), -1)
    losses = model(_pixels(2), ids, mask, torch.tensor([0, 1]), unknown)
    assert float(losses["attributes"].detach()) == 0.0  # every label unknown: nothing to learn
    labels = unknown.clone()
    labels[0, 2] = 3  # one upper-body label
    losses = model(_pixels(2), ids, mask, torch.tensor([0, 1]), labels)
    _, logits = model.encode(_pixels(2))
    expected = torch.nn.functional.cross_entropy(logits["upper"][:1], torch.tensor([3])) / 6
    assert torch.allclose(losses["attributes"], expected, atol=1e-6)
    assert torch.allclose(losses["loss"], losses["language"] + 0.15 * losses["attributes"])
    assert 0 < float(losses["language"].detach()) < 20


def test_padding_after_the_end_of_text_token_does_not_change_the_caption_loss(model, tokenizer):
    ids, mask = _batch(tokenizer, ["a red shirt."])
    longer = torch.cat([ids, torch.full((1, 5), 7)], 1)
    longer_mask = torch.cat([mask, torch.zeros(1, 5, dtype=mask.dtype)], 1)
    labels = torch.full((1, 6), -1)
    short = model(_pixels(1), ids, mask, torch.tensor([1]), labels)["language"]
    padded = model(_pixels(1), longer, longer_mask, torch.tensor([1]), labels)["language"]
    assert torch.allclose(short, padded, atol=1e-5)


def test_a_caption_trains_only_its_own_style_encoder(tokenizer):
    model = tiny_captioner(tokenizer)
    ids, mask = _batch(tokenizer, ["a red shirt."])
    model(_pixels(1), ids, mask, torch.tensor([1]), torch.full((1, 6), -1))["loss"].backward()
    first = [p.grad for p in model.styles[0].parameters()]
    second = [p.grad for p in model.styles[1].parameters()]
    assert all(g is None or not g.any() for g in first)
    assert any(g is not None and g.any() for g in second)


def test_greedy_generation_is_deterministic_and_the_two_styles_read_different_prefixes(model):
    pixels = _pixels(2)
    assert model.generate(pixels, 0, 6) == model.generate(pixels, 0, 6)
    one, two = model.styles[0](model.encode(pixels)[0]), model.styles[1](model.encode(pixels)[0])
    assert not torch.allclose(one, two)


def test_a_sampled_text_depends_on_its_seed_not_on_its_batch(model):
    pixels = _pixels(3, seed=4)
    together = model.generate(pixels, 1, 12, temperature=1.0, seeds=[5, 6, 7])
    alone = [model.generate(pixels[i : i + 1], 1, 12, temperature=1.0, seeds=[s]) for i, s in enumerate((5, 6, 7))]
    assert together == [a[0] for a in alone]
    assert model.generate(pixels[:1], 1, 12, temperature=1.0, seeds=[8]) != [together[0]]
    with pytest.raises(ValueError, match="one seed per image"):
        model.generate(pixels, 1, 4, temperature=1.0)


def test_generation_stops_at_max_new_tokens(model, monkeypatch):
    decoded = []
    decode = model.tokenizer.decode
    monkeypatch.setattr(model.tokenizer, "decode", lambda ids, **kw: decoded.append(ids) or decode(ids, **kw))
    model.generate(_pixels(2), 0, 3, temperature=2.0, seeds=[1, 2])
    assert len(decoded) == 2 and max(map(len, decoded)) == 3


def test_attribute_loss_averages_each_groups_known_labels():
    logits = {"a": torch.tensor([[2.0, 0.0], [0.0, 2.0]]), "b": torch.zeros(2, 3)}
    labels = torch.tensor([[0, -1], [1, -1]])
    expected = torch.nn.functional.cross_entropy(logits["a"], torch.tensor([0, 1])) / 2
    assert torch.allclose(attribute_loss(logits, labels, ["a", "b"]), expected)


def test_a_transformers_image_backbone_by_local_path(tmp_path, tokenizer):
    vit = ViTModel(
        ViTConfig(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            image_size=list(SMALL),
            patch_size=16,
        ),
        add_pooling_layer=False,
    )
    vit.save_pretrained(tmp_path / "vit")
    model = build_captioner(tiny_config(tokenizer, pretrained_backbone=str(tmp_path / "vit")), tokenizer)
    assert model.config.backbone_type == "vit" and model.config.backbone["hidden_size"] == 16
    assert torch.equal(
        model.backbone.embeddings.patch_embeddings.projection.weight,
        vit.state_dict()["embeddings.patch_embeddings.projection.weight"],
    )
    ids, mask = _batch(tokenizer, ["a red shirt."])
    losses = model(_pixels(1), ids, mask, torch.tensor([0]), torch.full((1, 6), -1))
    assert torch.isfinite(losses["loss"])


def test_preprocess_resizes_any_image_to_the_models_size(model):
    batch = model.preprocess_batch([Image.new("RGB", (50, 90), (255, 0, 0)), Image.new("L", (10, 10), 3)])
    assert batch.shape == (2, 3, *SMALL) and torch.equal(model.preprocess(Image.new("L", (10, 10), 3)), batch[1])
