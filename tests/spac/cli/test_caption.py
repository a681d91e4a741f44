"""`spac caption` through a subprocess (`python -m spac.cli.main`), as a user runs it."""
import json
import subprocess
import sys

import pytest

from spac.attributes import UNKNOWN
from spac.language import extract_attributes
from spac.render import random_identity, render_person


def spac(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spac.cli.main", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


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
        assert found == {g: v for g, v in predicted.items() if v != UNKNOWN}
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


def test_several_images_and_one_bad_one_loses_nothing_else(rendered, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    result = spac("caption", str(rendered[0][0]), str(bad), str(rendered[1][0]))
    assert result.returncode == 2
    assert result.stdout.count("== ") == 2
    assert result.stderr.strip().splitlines() == [f"spac caption: error: {bad}: not a readable image (UnidentifiedImageError)"]


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
