"""Shared inputs of the pipeline tests: the colour-coded predictor and a crafted image folder.

The folder has one identity per corpus rule (kept, gender voted, vote failed, too few, capped, images
with unknown groups), a truncated JPEG, a text file, a file outside the layout and one beside the
identity folders. ``EXPECTED`` holds what the job must make of it under ``JOB_FLAGS``; ``first_run`` is that job's
corpus,
shared by the tests that read it or copy it to rerun into.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipelines import synthesize
from tests.pipelines.colour_predictor import BLACK, BLUE, GREEN, RED, save_colour_predictor, solid_image

JOB_FLAGS = ["--min_images", "3", "--max_images", "6", "--shard_size", "4", "--batch_size", "4", "--seed", "7"]

# identity folder -> colours of its images
IDENTITIES = {
    "Part1/a": [RED] * 5,  # kept whole
    "Part1/b": [RED] * 4 + [GREEN],  # 0.8 > 0.7: kept, all voted "man"
    "Part1/c": [RED] * 3 + [GREEN] * 3,  # vote fails
    "Part2/d": [RED] * 2,  # fewer than 3 images
    "Part2/e": [RED] * 8,  # capped at 6
    "f": [RED] * 4 + [BLUE, BLACK],  # one image per per-image rule
}
EXPECTED = {
    "read": 35,
    "decoded": 32,
    "dead_lettered": 3,
    "written": 20,
    "filtered": {
        "too_many_unknown": 1,
        "upper_and_lower_unknown": 1,
        "gender_vote_failed": 6,
        "too_few_images": 2,
        "over_identity_cap": 2,
    },
    "identities": 4,
    "shards": 5,
}


def build_input_folder(root: Path) -> Path:
    for identity, colours in IDENTITIES.items():
        folder = root / identity
        folder.mkdir(parents=True)
        for n, colour in enumerate(colours):
            solid_image(colour, size=(48 + 8 * n, 120 + 10 * n)).save(folder / f"{n}.jpg", quality=95)
    whole = io.BytesIO()
    solid_image(RED).save(whole, format="JPEG")
    (root / "Part1/a/truncated.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    (root / "Part1/b/notes.txt").write_text("not an image\n")
    (root / "Part1/g/extra").mkdir(parents=True)
    solid_image(RED).save(root / "Part1/g/extra/0.jpg")  # one folder too deep
    (root / "labels.jsonl").write_text("{}\n")  # beside the identities: ignored
    return root


@pytest.fixture(scope="session")
def colour_predictor(tmp_path_factory) -> Path:
    return save_colour_predictor(tmp_path_factory.mktemp("predictor"))


@pytest.fixture(scope="session")
def input_folder(tmp_path_factory) -> Path:
    return build_input_folder(tmp_path_factory.mktemp("images"))


def run_job(input_folder: Path, output: Path, predictor: Path, *extra: str) -> dict[str, int]:
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(input_folder),
        "--output",
        str(output),
        "--predictor",
        str(predictor),
        *JOB_FLAGS,
        *extra,
    ]
    return synthesize.counters(synthesize.run(argv, save_main_session=False))


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def first_run(tmp_path_factory, input_folder, colour_predictor) -> tuple[Path, dict[str, int]]:
    output = tmp_path_factory.mktemp("corpus")
    return output, run_job(input_folder, output, colour_predictor)
