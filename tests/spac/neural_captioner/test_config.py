"""The captioner's config.json: a JSON round trip, presets, and one-line errors for a malformed file."""

import json
from dataclasses import replace

import pytest

from common.errors import InputError
from spac.attributes import load_schema
from spac.neural_captioner.config import (
    ATTRIBUTE_WEIGHT,
    CaptionerError,
    NeuralCaptionerConfig,
    check_labels,
    preset_generator,
)
from tests.spac.neural_captioner.tiny import tiny_config, tiny_tokenizer


@pytest.fixture(scope="module")
def config():
    return tiny_config(tiny_tokenizer())


def test_config_round_trips_through_json_with_the_schema_groups_and_the_paper_weight(config):
    again = NeuralCaptionerConfig.from_json(config.to_json())
    assert again == config
    assert config.groups == load_schema().group_names and config.attribute_weight == ATTRIBUTE_WEIGHT == 0.15
    assert config.prefix_tokens == (6 + 1) * 2  # one prefix per group plus the sentence branch


def test_a_generator_preset_takes_the_tokenizer_size_and_its_end_of_text_token():
    fields = preset_generator("tiny", 321, 7)
    assert fields["vocab_size"] == 321 and fields["bos_token_id"] == fields["eos_token_id"] == 7
    with pytest.raises(InputError, match="no generator preset 'huge'"):
        preset_generator("huge", 321, 7)


def _edited(config, **changes):
    data = json.loads(config.to_json())
    for key, value in changes.items():
        if value is None and key in data:
            del data[key]
        elif "." in key:
            outer, inner = key.split(".")
            data[outer][inner] = value
        else:
            data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"generator": None}, "missing key 'generator'"),
        ({"colour": 1}, "unexpected key 'colour'"),
        ({"style_names": ["a", "a"]}, "'style_names' must be two different non-empty names"),
        ({"style_names": ["a"]}, "'style_names' must be two different"),
        ({"prefix_length": 0}, "'prefix_length' must be a positive integer"),
        ({"attribute_weight": -1}, "'attribute_weight' must be a finite number >= 0"),
        ({"image_size": [64]}, "'image_size' must be"),
        ({"backbone.depths": [0, 1]}, "'backbone.depths' must be"),
        ({"generator.n_layer": 10_000}, "'generator.n_layer' must be an integer from 1 to 64"),
        ({"generator.n_head": 3}, "'generator.n_embd' must be a multiple of 'generator.n_head'"),
        ({"generator.n_positions": 10}, "leaves no room for text after the image's 14 prefix tokens"),
        ({"generator.no_such_field": [1]}, None),  # GPT2Config keeps unknown fields: not an error
        ({"backbone_type": "no-such-model"}, "'backbone' is not a valid transformers config"),
    ],
)
def test_a_malformed_config_is_one_line_naming_the_file_and_field(config, changes, message):
    text = _edited(config, **changes)
    if message is None:
        NeuralCaptionerConfig.from_json(text, "x/config.json")
        return
    with pytest.raises(CaptionerError) as info:
        NeuralCaptionerConfig.from_json(text, "x/config.json")
    assert message in str(info.value) and str(info.value).startswith("x/config.json: ")
    assert "\n" not in str(info.value) and isinstance(info.value, InputError)


@pytest.mark.parametrize("text", ["{", "[]", '"x"'])
def test_a_config_that_is_no_json_object_is_refused(text):
    with pytest.raises(CaptionerError, match="x: (invalid JSON|expected a JSON object)"):
        NeuralCaptionerConfig.from_json(text, "x")


def test_labels_of_another_schema_are_refused(config):
    other = replace(config, labels={**config.labels, "shoes": ["unknown", "glass slippers"]})
    with pytest.raises(CaptionerError, match="labels for group 'shoes' differ .* retrain the captioner"):
        check_labels(other, load_schema(), "x")
