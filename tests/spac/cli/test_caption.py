"""`spac caption` through a subprocess (`python -m spac.cli.main`), as a user runs it."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from shards.images import decode_image
from shards.sample import IMAGE_SIZE, encode_image
from spac.attributes import UNKNOWN
from spac.language import extract_attributes
from spac.render import random_identity, render_person


def spac(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spac.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two rendered people with their visible ground truth."""
    import random

    folder = tmp_path_factory.mktemp("people")
    rng = random.Random(1234)
    people = []
    for n in range(2):
        image, visible = render_person(random_identity(rng), seed=9000 + n)
        path = folder / f"person{n}.jpg"
        image.save(path, quality=95)
        people.append((path, visible))
    return people


def test_caption_prints_captions_that_mention_only_predicted_attributes(rendered):
    path, truth = rendered[0]
    result = spac("caption", str(path), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    predicted = {g: a["value"] for g, a in record["attributes"].items()}
    assert set(predicted) == set(truth)
    assert all(0.0 <= a["confidence"] <= 1.0 for a in record["attributes"].values())
    texts = [c["text"] for c in record["captions"]]
    assert 2 <= len(texts) <= 3 and len(set(texts)) == len(texts)
    assert record["captions"][-1]["style"] == "template"
    for text in texts:
        assert "unknown" not in text
        found = {m.group: m.value for m in extract_attributes(text) if m.value}
        expected = {g: v for g, v in predicted.items() if v != UNKNOWN}
        if "belongings" not in found and expected.get("belongings") == "nothing":
            del expected["belongings"]  # people rarely say it; usually left unsaid
        assert found == expected
    # The demo predictor should get most of a rendered person's visible attributes right.
    agree = sum(predicted[g] == truth[g] for g in truth)
    assert agree >= 3, (predicted, truth)


def test_plain_output_is_deterministic_and_seed_dependent(rendered):
    path, _ = rendered[0]
    first = spac("caption", str(path))
    again = spac("caption", str(path))
    other_seed = spac("caption", str(path), "--seed", "7")
    assert first.returncode == 0 and first.stdout == again.stdout
    assert 2 <= len(first.stdout.strip().splitlines()) <= 3
    assert other_seed.stdout != first.stdout


def test_sentences_flag_uses_a_mined_library_in_place_of_or_beside_ours(rendered, tmp_path):
    from spac.attributes import load_schema
    from spac.captioning.captioner import Captioner
    from spac.captioning.library import SentencesOption, library_for
    from tests.spac.mining_files import write_caption_files

    library = tmp_path / "mined.yaml"
    mined = spac("mine-templates", *map(str, write_caption_files(tmp_path)), "--out", str(library), "--quiet")
    assert mined.returncode == 0, mined.stderr
    paths = [str(path) for path, _ in rendered]
    schema = load_schema()
    for flag, add in ((str(library), False), (f"+{library}", True)):
        result = spac("caption", *paths, "--json", "--sentences", flag, "--seed", "2")
        assert result.returncode == 0, result.stderr
        captioner = Captioner(schema, library=library_for(SentencesOption(str(library), add), schema))
        for path, line in zip(paths, result.stdout.splitlines()):
            record = json.loads(line)
            attributes = {g: a["value"] for g, a in record["attributes"].items()}
            expected = captioner(attributes, key=Path(path).name, seed=2)
            assert [(c["text"], c["style"]) for c in record["captions"]] == [(c.text, c.style) for c in expected]
    mined_texts = {s.text for s in library_for(SentencesOption(str(library)), schema).sentences}
    assert captioner.library.sentences[-1].text in mined_texts  # "+PATH" appends the mined sentences to ours


def test_several_images_and_one_bad_one_loses_nothing_else(rendered, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    result = spac("caption", str(rendered[0][0]), str(bad), str(rendered[1][0]))
    assert result.returncode == 2
    assert result.stdout.count("== ") == 2
    assert result.stderr.strip().splitlines() == [f"spac caption: error: {bad}: not a decodable image"]


def _attributes(stdout: str) -> list[dict]:
    return [json.loads(line)["attributes"] for line in stdout.splitlines()]


# EXIF orientation -> how the stored pixels are turned from upright (the viewer undoes it)
STORED_TURN = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def test_exif_rotated_photo_gets_the_upright_images_attributes(rendered, tmp_path):
    upright = rendered[0][0]
    rotated = []
    for orientation, turn in STORED_TURN.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"orientation{orientation}.jpg"
        with Image.open(upright) as image:
            image.transpose(turn).save(path, quality=95, exif=exif)
        rotated.append(str(path))
    result = spac("caption", "--json", str(upright), *rotated)
    assert result.returncode == 0, result.stderr
    values = [{g: a["value"] for g, a in attributes.items()} for attributes in _attributes(result.stdout)]
    assert values[1:] == [values[0]] * 2


def test_refused_and_corrupt_files_are_one_line_each_and_the_others_are_captioned(rendered, tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("L", (9000, 9000)).save(bomb, optimize=True)  # ~80 KB on disk, 81 megapixels decoded
    whole = rendered[0][0].read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])
    folder, missing = tmp_path / "folder", tmp_path / "missing.jpg"
    folder.mkdir()
    good = [str(path) for path, _ in rendered]
    result = spac("caption", good[0], str(bomb), str(truncated), str(missing), str(folder), good[1])
    assert result.returncode == 2
    assert [line for line in result.stdout.splitlines() if line.startswith("== ")] == [f"== {g}" for g in good]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 4 and "Traceback" not in result.stderr
    assert errors[0] == f"spac caption: error: {bomb}: image too large: 9000x9000 pixels exceed the budget of 40000000"
    assert errors[1].startswith(
        f"spac caption: error: {truncated}: corrupt or unreadable image: image file is truncated"
    )
    assert errors[2:] == [
        f"spac caption: error: {missing}: no such file",
        f"spac caption: error: {folder}: is a directory, not an image",
    ]


def test_budget_flags_refuse_files_above_them(rendered):
    path = rendered[0][0]
    result = spac("caption", str(path), str(path), "--max-pixels", "1000")
    assert result.returncode == 2 and not result.stdout
    assert (
        result.stderr.strip().splitlines()
        == [f"spac caption: error: {path}: image too large: 128x256 pixels exceed the budget of 1000"] * 2
    )
    size = path.stat().st_size
    assert spac("caption", str(path), "--max-file-bytes", str(size)).returncode == 0
    result = spac("caption", str(path), "--max-file-bytes", str(size - 1))
    assert result.returncode == 2
    assert result.stderr.strip() == f"spac caption: error: {path}: file larger than {size - 1} bytes"


def test_predictor_sees_the_corpus_jpeg_as_the_pipeline_does(rendered, tmp_path):
    from spac.predictor.model import load_predictor

    with Image.open(rendered[1][0]) as image:  # a photo larger than the corpus size: decoded at a reduced scale
        large = image.resize((image.width * 4, image.height * 4), Image.Resampling.BICUBIC)
    path = tmp_path / "large.jpg"
    large.save(path, quality=95)
    result = spac("caption", "--json", str(path))
    assert result.returncode == 0, result.stderr
    (printed,) = _attributes(result.stdout)

    predictor = load_predictor()
    corpus_jpeg = encode_image(decode_image(path.read_bytes(), min_size=IMAGE_SIZE))  # what the pipeline predicts on
    (expected,) = predictor.predict([Image.open(io.BytesIO(corpus_jpeg))])
    assert {g: a["value"] for g, a in printed.items()} == expected.attributes
    for group, attribute in printed.items():
        assert attribute["confidence"] == pytest.approx(expected.confidences[group], abs=1e-3)
    # the test tells the two apart: the original pixels give other confidences
    (original,) = predictor.predict([large])
    assert any(abs(original.confidences[g] - a["confidence"]) > 5e-3 for g, a in printed.items())


@pytest.mark.parametrize(
    "args, message",
    [
        (["caption", "does-not-exist.jpg"], "does-not-exist.jpg: no such file"),
        (["caption", "x.jpg", "--seed", "abc"], "invalid int value"),
        (["caption", "x.jpg", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["caption", "x.jpg", "--predictor", "/nonexistent/model"], "cannot load predictor"),
        (["caption", "x.jpg", "--styles", "baroque"], "argument --styles: unknown style 'baroque'; valid styles:"),
        (["caption", "x.jpg", "--min-confidence", "2"], "argument --min-confidence: must be between 0 and 1, got 2"),
        (["caption", "x.jpg", "--device", "tpu"], "argument --device: invalid device 'tpu'"),
        (["caption", "x.jpg", "--max-pixels", "0"], "argument --max-pixels: must be at least 1, got 0"),
        (["caption", "x.jpg", "--max-file-bytes", "1e6"], "argument --max-file-bytes: expected an integer, got '1e6'"),
        (["caption", "x.jpg", "--sentences", "+"], "argument --sentences: expected PATH"),
        (["caption", "x.jpg", "--sentences", "none.yaml"], "none.yaml: cannot read sentence library"),
        (["caption", "x.jpg", "--sentences", "x.jpg"], "x.jpg: <top level>: expected a mapping"),
        (["nonsense"], "unknown command 'nonsense'"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "x.jpg").write_bytes(b"")
    result = spac(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


# ---- issue 19: hostile file names and files that are not regular ---------------------------------------------


def test_a_fifo_named_like_an_image_is_refused_and_the_good_image_captioned(rendered, tmp_path):
    import os

    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)  # open() on it would block forever
    good = str(rendered[0][0])
    result = spac("caption", str(fifo), good)  # spac() fails the test after 120 s instead of hanging
    assert result.returncode == 2
    assert [line for line in result.stdout.splitlines() if line.startswith("== ")] == [f"== {good}"]
    assert result.stderr.strip().splitlines() == [f"spac caption: error: {fifo}: is a FIFO, not an image"]


def test_file_names_are_printed_escaped_so_they_cannot_forge_lines(rendered, tmp_path):
    forged = tmp_path / "a.jpg\n== fake.jpg"
    forged.write_bytes(rendered[0][0].read_bytes())
    broken = tmp_path / "b.jpg\nspac caption: error: fake"
    broken.write_bytes(b"not an image")
    result = spac("caption", str(forged), str(broken), str(rendered[1][0]))
    assert result.returncode == 2
    headers = [line for line in result.stdout.splitlines() if line.startswith("== ")]
    assert headers == [f"== {tmp_path}/a.jpg\\n== fake.jpg", f"== {rendered[1][0]}"]
    assert result.stderr.strip().splitlines() == [
        f"spac caption: error: {tmp_path}/b.jpg\\nspac caption: error: fake: not a decodable image"
    ]


def test_a_name_that_is_not_utf_8_and_a_terminal_escape_are_shown_as_escapes(rendered, tmp_path):
    import os

    names = [os.fsencode(tmp_path) + b"/caf\xff.jpg", os.fsencode(tmp_path) + b"/\x1b[2Jclear.jpg"]
    for name in names:
        with open(name, "wb") as out:
            out.write(b"not an image")
    result = subprocess.run(
        [sys.executable, "-m", "spac.cli.main", "caption", *names], capture_output=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.decode("ascii").strip().splitlines() == [
        f"spac caption: error: {tmp_path}/caf\\xff.jpg: not a decodable image",
        f"spac caption: error: {tmp_path}/\\x1b[2Jclear.jpg: not a decodable image",
    ]


def _numbered(body: dict):
    """The tests' chat server's answer: a text no other request gets (it names the request's seed)."""
    from tests.spac.generation.fake_server import text_reply

    return text_reply(f"A person walks along the pavement in picture number {body['seed']}.")


def test_a_caption_model_server_writes_the_captions_and_the_library_sentence_stays_last(rendered):
    from tests.spac.generation.fake_server import FakeChatServer

    path, _ = rendered[0]
    with FakeChatServer(_numbered) as server:
        result = spac("caption", str(path), "--mllm-server", server.base_url, "--mllm-model", "tiny")
        requests = [body for _, body in server.requests]
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    # the two requests are in flight at once, so they may reach the server in either order
    expected = [f"A person walks along the pavement in picture number {body['seed']}." for body in requests]
    assert sorted(lines[:2]) == sorted(expected) and len(set(expected)) == 2
    assert lines[2] == spac("caption", str(path)).stdout.strip().splitlines()[-1]  # the template run's sentence
    assert all(body["model"] == "tiny" and body["temperature"] == 0.0 for body in requests)


def test_json_shows_each_texts_provenance_and_every_rejection(rendered):
    from tests.spac.generation.fake_server import FakeChatServer, Reply, text_reply

    def answer(body: dict) -> Reply:
        return text_reply("Too short.") if body["seed"] % 2 else _numbered(body)

    path, _ = rendered[0]
    with FakeChatServer(answer) as server:
        result = spac("caption", str(path), "--mllm-server", server.base_url, "--mllm-model", "tiny", "--json")
        seeds = [body["seed"] for _, body in server.requests]
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    short = sum(seed % 2 == 1 for seed in seeds)
    assert short > 0  # the script rejected at least one text
    assert record["key"] == path.name and set(record["attributes"]) >= {"gender", "upper"}
    assert record["counters"]["mllm_requested"] == len(seeds)
    assert record["counters"].get("mllm_rejected_too_short", 0) == short
    assert record["rejections"] == [
        {"style": record["rejections"][n]["style"], "reason": "too_short", "text": "Too short."} for n in range(short)
    ]
    kept = [text for text, style in zip(record["captions"], record["styles"]) if style.startswith("mllm:")]
    assert len(kept) == record["counters"]["mllm_kept"] == len(seeds) - short
    assert "Too short." not in record["captions"] and len(record["prompt_caption"]) == 1
    assert len(record["attribute_spans"]) == len(record["captions"]) + 1


def test_predictor_mllm_takes_the_attributes_from_the_model_and_grounds_its_captions_on_them(rendered):
    from tests.spac.generation.fake_server import FakeChatServer, json_answers

    asked = {
        "gender": "woman",
        "hair": "long black hair",
        "upper": "red coat",
        "lower": "blue jeans",
        "shoes": "glass slippers",  # off the schema: unknown, never invented
        "belongings": UNKNOWN,
    }
    path, _ = rendered[0]
    with FakeChatServer(json_answers(asked, other=_numbered)) as server:
        result = spac(
            "caption", str(path), "--predictor", "mllm", "--mllm-server", server.base_url, "--mllm-model", "tiny",
            "--json",
        )  # fmt: skip
        requests = [body for _, body in server.requests]
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert {g: e["value"] for g, e in record["attributes"].items()} == {**asked, "shoes": UNKNOWN}
    assert record["attributes"]["gender"]["confidence"] == 1.0 and record["attributes"]["shoes"]["confidence"] == 0
    assert "response_format" in requests[0]  # asked first, then the captions grounded on the answer
    captions = [body for body in requests if "response_format" not in body]
    assert captions and all("woman" in body["messages"][-1]["content"][-1]["text"] for body in captions)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--mllm-server", "http://127.0.0.1:9/v1"], "--mllm-server needs --mllm-model"),
        (["--predictor", "mllm"], "--predictor mllm needs --mllm-model"),
        (
            ["--mllm-server", "http://127.0.0.1:9/v1", "--mllm-model", "tiny"],
            "cannot reach the caption-model server at http://127.0.0.1:9/v1",
        ),
        (
            ["--mllm-server", "http://127.0.0.1:9/v1", "--mllm-model", "tiny", "--mllm-texts", "4"],
            "texts per image must be 1 to 3",
        ),
    ],
)
def test_a_caption_model_that_cannot_be_used_is_one_line_and_exit_2(rendered, flags, message):
    result = spac("caption", str(rendered[0][0]), *flags)
    assert result.returncode == 2 and result.stdout == ""
    err = result.stderr.strip()
    assert "\n" not in err and message in err


@pytest.mark.slow
def test_a_caption_model_in_this_process_by_path(rendered, tmp_path):
    """The tiny random model answers words at random: every text it writes is counted, none unchecked is kept."""
    from tests.spac.generation.tiny_vlm import build_tiny_vlm

    model = build_tiny_vlm(tmp_path / "tiny")
    result = spac("caption", str(rendered[0][0]), "--mllm-model", str(model), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    counters = record["counters"]
    rejected = sum(v for k, v in counters.items() if k.startswith(("mllm_rejected_", "mllm_failed_")))
    assert counters["mllm_requested"] == counters["mllm_kept"] + rejected >= 2
    assert len(record["captions"]) == 2 and len(record["prompt_caption"]) == 1


def test_the_neural_captioner_writes_the_two_style_texts_each_checked(rendered, tmp_path):
    """A tiny untrained captioner, as a user runs it: its two texts are counted, and the library sentence is
    the template run's."""
    from tests.pipelines.synthesis.test_neural_captioner import save_tiny_captioner

    model = save_tiny_captioner(tmp_path / "captioner")
    path, _ = rendered[0]
    result = spac("caption", str(path), "--captioner", "spac", "--captioner-model", str(model), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    counters = record["counters"]
    rejected = sum(v for k, v in counters.items() if k.startswith("spac_rejected_"))
    assert counters["spac_requested"] == 2 == counters["spac_kept"] + rejected
    assert counters["spac_fallback"] == rejected == len(record["rejections"])
    assert len(record["captions"]) == 2 and len(record["attribute_spans"]) == 3
    template = json.loads(spac("caption", str(path), "--json").stdout)
    assert record["prompt_caption"] == [template["captions"][-1]["text"]]


def test_json_shows_which_captioner_wrote_each_text_and_why_one_was_rejected(rendered, monkeypatch, capsys):
    """A scripted captioner in this process: style 0 names another colour of the upper garment, style 1 is kept."""
    from spac.cli.caption import cli_main
    from spac.neural_captioner import files
    from tests.spac.generation.scripted_captioner import ScriptedCaptioner

    path, _ = rendered[0]
    assert cli_main([str(path), "--json"]) == 0
    template = json.loads(capsys.readouterr().out)
    upper = template["attributes"]["upper"]["value"]
    other = "green" if "green" not in upper else "purple"
    wrong = f"A person in a {other} {upper.split()[-1]} walks along the pavement."
    right = f"A person in a {upper} walks along the pavement slowly."
    scripted = ScriptedCaptioner(lambda key, style: (wrong, right)[style])
    monkeypatch.setattr(files, "load_captioner", lambda path, device: scripted)
    assert cli_main([str(path), "--captioner", "spac", "--captioner-model", "anywhere", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["rejections"] == [{"style": "spac:cuhk", "reason": "contradiction", "text": wrong}]
    assert record["captions"][1] == right and record["styles"][1] == "spac:icfg"
    assert record["captions"][0] == template["captions"][0]["text"]  # the template caption of that slot
    assert record["styles"][0] == template["captions"][0]["style"]
    assert record["counters"] == {
        "spac_requested": 2,
        "spac_kept": 1,
        "spac_fallback": 1,
        "spac_rejected_contradiction": 1,
    }


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--captioner", "spac"], "--captioner spac needs --captioner-model"),
        (["--captioner-model", "somewhere"], "--captioner-model needs --captioner spac"),
        (["--captioner", "mllm"], "--captioner mllm needs --mllm-model"),
        (["--captioner", "spac", "--captioner-model", "MISSING"], "--captioner-model: "),
        (["--captioner", "spac", "--captioner-model", "EMPTY"], "--captioner-model: "),
        (["--captioner", "spac", "--captioner-model", "EMPTY", "--mllm-model", "tiny"], "--mllm-model writes no"),
    ],
)
def test_a_neural_captioner_that_cannot_be_used_is_one_line_and_exit_2(rendered, tmp_path, flags, message):
    (tmp_path / "empty").mkdir()
    names = {"MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty")}
    result = spac("caption", str(rendered[0][0]), *[names.get(flag, flag) for flag in flags])
    assert result.returncode == 2 and result.stdout == ""
    err = result.stderr.strip()
    assert "\n" not in err and message in err
