"""A captioner directory: saved and loaded back to the same texts, its files' sha256, and the launch-time check's
one-line errors."""

import json

import pytest
from PIL import Image
from safetensors.torch import load_file, save_file

from common.errors import InputError
from spac.neural_captioner.files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CaptionerError,
    captioner_files_sha256,
    check_captioner,
    load_captioner,
    save_captioner,
)
from tests.spac.neural_captioner.tiny import STYLES, tiny_captioner, tiny_tokenizer

IMAGES = [Image.new("RGB", (32, 64), (200, 20, 20)), Image.new("RGB", (40, 90), (20, 20, 200))]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tokenizer = tiny_tokenizer()
    model = tiny_captioner(tokenizer).eval()
    directory = save_captioner(model, tokenizer, tmp_path_factory.mktemp("captioner") / "spac")
    return model, directory


def _copy(directory, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    for path in directory.rglob("*"):
        if path.is_file():
            (target / path.relative_to(directory)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(directory)).write_bytes(path.read_bytes())
    return target


def test_a_saved_captioner_loads_back_and_writes_the_same_texts(saved):
    model, directory = saved
    check_captioner(directory)
    loaded = load_captioner(directory)
    assert loaded.style_names == STYLES
    pixels = model.preprocess_batch(IMAGES)
    for style in (0, 1):
        assert loaded.caption_images(IMAGES, style, max_new_tokens=8) == model.generate(pixels, style, 8)
    sampled = loaded.caption_images(IMAGES, 1, max_new_tokens=8, temperature=1.0, seed=3, keys=["a", "b"])
    assert loaded.caption_images(IMAGES[1:], 1, max_new_tokens=8, temperature=1.0, seed=3, keys=["b"]) == sampled[1:]
    generator = loaded.model.generator  # the output layer is the token embeddings again, not left random
    assert generator.lm_head.weight.data_ptr() == generator.transformer.wte.weight.data_ptr()


def test_describe_names_the_kind_path_files_and_styles(saved):
    _, directory = saved
    described = load_captioner(directory).describe()
    assert described["kind"] == "spac" and described["path"] == str(directory)
    assert described["style_names"] == list(STYLES)
    assert described["files_sha256"] == captioner_files_sha256(directory)
    assert {CONFIG_FILE, WEIGHTS_FILE, "tokenizer/tokenizer_config.json"} <= set(described["files_sha256"])
    json.dumps(described)


def test_the_files_sha256_change_with_the_weights(saved, tmp_path):
    _, directory = saved
    copy = _copy(directory, tmp_path)
    state = load_file(str(copy / WEIGHTS_FILE))
    state["prefix.position"] = state["prefix.position"] + 1
    save_file(state, str(copy / WEIGHTS_FILE))
    before, after = captioner_files_sha256(directory), captioner_files_sha256(copy)
    assert before[WEIGHTS_FILE] != after[WEIGHTS_FILE] and before[CONFIG_FILE] == after[CONFIG_FILE]


def _break(copy, how):
    if how == "no config":
        (copy / CONFIG_FILE).unlink()
    elif how == "bad json":
        (copy / CONFIG_FILE).write_text("{", encoding="utf-8")
    elif how == "other shape":
        data = json.loads((copy / CONFIG_FILE).read_text(encoding="utf-8"))
        data["prefix_length"] = 3
        (copy / CONFIG_FILE).write_text(json.dumps(data), encoding="utf-8")
    elif how == "extra tensor":
        state = load_file(str(copy / WEIGHTS_FILE))
        save_file({**state, "stray": state["prefix.position"].clone()}, str(copy / WEIGHTS_FILE))
    elif how == "cut weights":
        (copy / WEIGHTS_FILE).write_bytes((copy / WEIGHTS_FILE).read_bytes()[:100])
    elif how == "no tokenizer":
        (copy / "tokenizer" / "tokenizer_config.json").unlink()


@pytest.mark.parametrize(
    "how, message",
    [
        ("no config", "not a captioner directory (it lacks config.json)"),
        ("bad json", "config.json: invalid JSON"),
        ("other shape", "config.json implies [192]"),
        ("extra tensor", "weights do not match config.json (unexpected 'stray')"),
        ("cut weights", "model.safetensors: not a readable safetensors file"),
        ("no tokenizer", "it lacks tokenizer/tokenizer_config.json"),
    ],
)
def test_a_damaged_captioner_is_refused_in_one_line_before_loading(saved, tmp_path, how, message):
    copy = _copy(saved[1], tmp_path)
    _break(copy, how)
    for check in (check_captioner, load_captioner):
        with pytest.raises(CaptionerError) as info:
            check(copy)
        assert message in str(info.value) and "\n" not in str(info.value) and isinstance(info.value, InputError)


def test_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(CaptionerError, match="no captioner directory there"):
        check_captioner(tmp_path / "none")
