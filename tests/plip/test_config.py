import pytest

from common.errors import InputError
from plip.config import PLIPConfig, TextConfig, VisionConfig
from plip.factory import get_config, list_models


def test_from_dict_builds_sections_and_names_an_unknown_key():
    config = PLIPConfig.from_dict({"vision": {"output_dim": 512}, "tic": {"weight": 0}})
    assert config.vision.output_dim == 512 and config.vision.width == 64 and config.tic.weight == 0
    assert PLIPConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match=r"config.vision: unknown key\(s\) \['depth'\]"):
        PLIPConfig.from_dict({"vision": {"depth": 3}})


def test_sections_check_their_values():
    with pytest.raises(ValueError, match="multiples of 32"):
        VisionConfig(image_size=(250, 128))
    with pytest.raises(ValueError, match="text.pooling must be one of"):
        TextConfig(pooling="max")
    with pytest.raises(ValueError, match="needs text.bert"):
        TextConfig(pretrained=False)


@pytest.mark.parametrize(
    "data, message",
    [
        # issue 19: a checkpoint's config.json with these was a StrictDataclassFieldValidationError traceback
        (
            {"text": {"pretrained": False, "bert": {"hidden_size": "big"}}},
            "text.bert.hidden_size must be an integer from 1 to 4096, got 'big'",
        ),
        (
            {"text": {"pretrained": False, "bert": {"num_hidden_layers": 2.5}}},
            "text.bert.num_hidden_layers must be an integer from 1 to 48, got 2.5",
        ),
        # issue 19: 2.6 GB allocated before refusal; the process aborted inside the tokenizer's padding
        ({"vision": {"width": 4096}}, "vision.width must be an integer from 1 to 256, got 4096"),
        ({"text": {"max_length": 50_000_000}}, "text.max_length must be an integer from 1 to 512, got 50000000"),
        # our own: every other size, type and cross-field rule
        ({"vision": {"layers": [3, 4, 6, 10**6]}}, r"vision.layers\[3\] must be an integer from 1 to 64"),
        ({"vision": {"layers": "3463"}}, "vision.layers must be a list of 4 integers"),
        ({"vision": {"heads": True}}, "vision.heads must be an integer from 1 to 128, got True"),
        ({"vision": {"image_size": [256, 10**6]}}, r"vision.image_size\[1\] must be an integer from 32 to 1024"),
        ({"vision": 7}, "config.vision must be an object, got 7"),
        (
            {"text": {"pretrained": False, "bert": {"num_labels": 10**9}}},
            r"text.bert: unknown key\(s\) \['num_labels'\]",
        ),
        (
            {"text": {"pretrained": False, "bert": {"hidden_size": 30, "num_attention_heads": 4}}},
            "num_attention_heads=4 must divide text.bert.hidden_size=30",
        ),
        (
            {"text": {"pretrained": False, "max_length": 128, "bert": {"max_position_embeddings": 64}}},
            "text.max_length=128 exceeds text.bert.max_position_embeddings=64",
        ),
        ({"text": {"pretrained": "yes"}}, "text.pretrained must be true or false"),
        (
            {"text": {"pretrained": False, "bert": {"layer_norm_eps": float("nan")}}},
            "text.bert.layer_norm_eps must be a number",
        ),
        ({"tic": {"channels": 18}}, "tic.channels=18 must be a multiple of the 4 image stages"),
        ({"tic": {"weight": float("inf")}}, "tic.weight must be a number from 0 to 1000"),
        (
            {"iap": {"heads": 5}, "text": {"pretrained": False, "bert": {"hidden_size": 32, "num_attention_heads": 2}}},
            "iap.heads=5 must divide text.bert.hidden_size=32",
        ),
        ({"ivlc_weight": "1"}, "ivlc_weight must be a number from 0 to 1000"),
    ],
)
def test_every_size_and_type_is_checked_before_anything_is_built(data, message):
    with pytest.raises(InputError, match=message) as error:
        PLIPConfig.from_dict(data)
    assert "\n" not in str(error.value)


def test_the_bounds_admit_every_preset_and_a_bert_base_config():
    for name in list_models():
        assert PLIPConfig.from_dict(get_config(name).to_dict()) == get_config(name)
    base = {
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }
    assert PLIPConfig.from_dict({"text": {"pretrained": False, "bert": base, "max_length": 512}}).text.bert == base
