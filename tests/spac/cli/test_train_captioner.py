"""`spac train-captioner` on small rendered corpora: two style modules as the two styles, two corpora as the two
styles, validation and resume, and one-line errors for bad flags or data."""

import json

import pytest

from common.cli import run_main
from shards import encode_image, make_sample, write_manifest, write_shard
from spac.cli.train_captioner import cli_main
from spac.neural_captioner.files import check_captioner, load_captioner
from spac.render.styled_corpus import styled_people
from spac.render.training_source import training_people

TINY = [
    "--backbone",
    "tiny",
    "--generator",
    "tiny",
    "--image-size",
    "64x32",
    "--prefix-length",
    "1",
    "--vocab-size",
    "300",
    "--steps",
    "3",
    "--batch-size",
    "4",
    "--max-tokens",
    "24",
    "--quiet",
]


def _write_corpus(directory, count, seed=0, styles=("dense", "inventory")):
    """Rendered people with two captions each, one per style module (the record's styles say which)."""
    people = styled_people(seed, count, styles)
    write_shard(str(directory), 0, [make_sample(record, encode_image(image)) for record, image in people])
    write_manifest(str(directory))
    return directory


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _write_corpus(tmp_path_factory.mktemp("rendered") / "corpus", 8)


def _run(argv, capsys):
    code = run_main("spac train-captioner", cli_main, argv)
    return code, capsys.readouterr().err


def test_two_style_modules_of_a_rendered_corpus_train_the_two_styles(corpus, tmp_path, capsys):
    out = tmp_path / "captioner"
    argv = ["--data", str(corpus), "--out", str(out), "--style-field", "styles", "--style-values", "dense,inventory"]
    code, err = _run([*argv, *TINY], capsys)
    assert (code, err) == (0, "")
    check_captioner(out)
    loaded = load_captioner(out)
    assert loaded.style_names == ("dense", "inventory")
    training = loaded.model.config.training
    assert training["style_values"] == ["dense", "inventory"] and training["style_field"] == "styles"
    assert training["steps"] == 3 and training["captions"] == 12
    image = training_people(9, 1)[0][0]
    assert len(loaded.caption_images([image, image], 1, max_new_tokens=5)) == 2


def test_by_default_each_corpus_is_a_style_named_after_it(corpus, tmp_path, capsys):
    other = _write_corpus(tmp_path / "second", 4, seed=1, styles=("appositive", "narrative"))
    out = tmp_path / "captioner"
    argv = ["--data", f"cuhk={corpus}", "--data", f"icfg={other}", "--out", str(out), "--style-names", "x,y"]
    assert _run([*argv, *TINY], capsys) == (0, "")
    loaded = load_captioner(out)
    assert loaded.style_names == ("x", "y") and loaded.model.config.training["style_values"] == ["cuhk", "icfg"]


def test_validation_history_and_an_exact_resume_from_the_checkpoint(corpus, tmp_path, capsys):
    out = tmp_path / "captioner"
    argv = ["--data", str(corpus), "--out", str(out), "--style-field", "styles", "--style-values", "dense,inventory"]
    flags = [*argv, *TINY, "--eval-every", "1", "--val-percent", "30", "--checkpoint-every", "1"]
    assert _run(flags, capsys) == (0, "")
    history = json.loads((out / "history.json").read_text(encoding="utf-8"))
    assert [h["step"] for h in history] == [1, 2, 3]
    weights = (out / "model.safetensors").read_bytes()
    assert _run([*flags, "--resume"], capsys) == (0, "")  # the checkpoint is at the end: nothing left to train
    assert (out / "model.safetensors").read_bytes() == weights
    code, err = _run([*flags, "--resume", "--lr", "0.1"], capsys)
    assert code == 2 and "cannot resume from" in err and "lr was 0.0005, now 0.1" in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--style-field", "styles"], "--style-values A,B: which two values"),
        (["--style-field", "styles", "--style-values", "dense,human"], "no caption of style value 'human'"),
        (["--style-values", "dense"], "expected two different comma-separated names"),
        (["--patience", "2"], "--patience needs --eval-every"),
        (
            ["--style-values", "dense,inventory", "--style-field", "styles", "--generator", "/no/gpt2"],
            "--generator: cannot",
        ),
    ],
)
def test_bad_flags_and_data_are_one_line(corpus, tmp_path, capsys, extra, message):
    code, err = _run(["--data", str(corpus), "--out", str(tmp_path / "o"), *TINY, *extra], capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_help_explains_the_style_field(capsys):
    assert run_main("spac train-captioner", cli_main, ["--help"]) == 0
    text = capsys.readouterr().out
    assert "--style-field" in text and "style modules" in text and "--resume" in text
