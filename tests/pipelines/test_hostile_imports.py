"""Issue 19, the pipelines' cases: one hostile entry or file never kills, stalls or widens a job. Each test
failed (a traceback, a hang, a duplicate kept, a file read through a link, a wrong count) before the fix."""

from __future__ import annotations

import json
import os
import textwrap

from pipelines import import_corpus
from shards.layout import DEAD_LETTER_NAME, MANIFEST_NAME
from tests.pipelines.colour_predictor import RED, solid_image
from tests.pipelines.conftest import JOB_FLAGS
from tests.pipelines.hostile_import import GOOD, HOSTILE, build_hostile_dataset, run_in_subprocess
from tests.pipelines.import_datasets import IN_SCHEMA, person_image

JOB_SECONDS = 240  # a job here takes 10-40 s on a busy 2-core machine; a FIFO opened blocks for ever


def _letters(output) -> list[dict]:
    return [json.loads(line) for line in (output / DEAD_LETTER_NAME).read_text().splitlines()]


def _import(dataset, output) -> dict[str, int]:
    argv = ["--runner=DirectRunner", "--input", str(dataset), "--output", str(output)]
    return import_corpus.counters(import_corpus.run(argv, save_main_session=False))


def test_each_hostile_entry_is_one_dead_letter_and_every_other_entry_is_written(tmp_path):
    """Cases 1-4: an undecodable byte or a lone surrogate in a caption, a NUL byte in file_path, one file
    spelled three ways, symbolic links (of a file, of a folder) out of the image root."""
    dataset, output = build_hostile_dataset(tmp_path / "ds"), tmp_path / "out"
    counters = _import(dataset, output)
    names = list(HOSTILE)
    letters = {letter["entry"]: letter for letter in _letters(output)}
    for index, name in enumerate(names):
        outcome = HOSTILE[name]
        if outcome == "kept":
            assert index not in letters
        else:
            stage, reason = outcome
            assert (letters[index]["stage"], reason in letters[index]["reason"]) == (stage, True), letters[index]
    written = json.loads((output / MANIFEST_NAME).read_text())["totals"]["samples"]
    kept = sum(outcome == "kept" for outcome in HOSTILE.values())
    assert written == counters["written"] == kept and counters["dead_lettered"] == len(letters) == len(names) - kept
    assert counters["duplicates"] == 2


def _fifo_dataset(root):
    (root / "Part1/1").mkdir(parents=True)
    person_image(1).save(root / GOOD)
    os.mkfifo(root / "Part1/1/x.jpg")
    entries = [
        {
            "id": 1,
            "file_path": name,
            "attributes": [IN_SCHEMA],
            "captions": ["A man in a red t-shirt."],
            "prompt_caption": [],
        }
        for name in (GOOD, "Part1/1/x.jpg")
    ]
    (root / "synthpedes_dataset.json").write_text(json.dumps(entries))
    return root


def test_a_fifo_named_like_an_image_is_refused_by_the_import_job(tmp_path):
    """Case 5: the import job never opens a FIFO (open() would block for ever)."""
    dataset, output = _fifo_dataset(tmp_path / "ds"), tmp_path / "out"
    done = run_in_subprocess(
        textwrap.dedent(f"""
        from pipelines import import_corpus
        import_corpus.run(["--runner=DirectRunner", "--input", {str(dataset)!r}, "--output", {str(output)!r}],
                          save_main_session=False)
        """),
        JOB_SECONDS,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (letter,) = _letters(output)
    assert (letter["entry"], letter["stage"], letter["reason"]) == (1, "decode", "is a FIFO, not an image")


def _fifo_folder(root):
    for identity in ("p1", "p2"):
        (root / identity).mkdir(parents=True)
        for n in range(3):
            solid_image(RED, size=(48 + 8 * n, 120)).save(root / identity / f"{n}.jpg")
    os.mkfifo(root / "p1" / "x.jpg")
    rows = [
        f"{identity}/{name},{identity}" for identity in ("p1", "p2") for name in sorted(os.listdir(root / identity))
    ]
    (root / "images.csv").write_text("path,identity\n" + "\n".join(rows) + "\n")
    return root


def test_a_fifo_named_like_an_image_is_refused_by_the_synthesis_job(tmp_path, colour_predictor):
    """Case 5: the synthesis job, from a folder and from an image list, never opens a FIFO."""
    root = _fifo_folder(tmp_path / "in")
    for name, location in (("folder", root), ("manifest", root / "images.csv")):
        output = tmp_path / name
        argv = [
            "--runner=DirectRunner",
            "--input",
            str(location),
            "--output",
            str(output),
            "--predictor",
            str(colour_predictor),
            *JOB_FLAGS,
        ]
        done = run_in_subprocess(
            f"from pipelines import synthesize\nsynthesize.run({argv!r}, save_main_session=False)", JOB_SECONDS
        )
        assert done.returncode == 0, (name, done.stderr[-2000:])
        decode = [letter for letter in _letters(output) if letter["stage"] == "decode"]
        assert [(letter["path"], letter["reason"]) for letter in decode] == [
            (f"{root}/p1/x.jpg", "is a FIFO, not an image")
        ], name
