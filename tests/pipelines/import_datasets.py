"""Small datasets in the released layouts, for the import job's tests.

``write_synthpedes``: ``synthpedes_dataset.json`` + ``Part1/<id>/<n>.jpg`` images: four identities of four
images, one entry with a phrase outside our schema ("black cape"), one whose image is missing, one whose
image is a truncated JPEG, one whose attribute string has five phrases, one listed twice.
``write_cuhk_pedes`` / ``write_rstpreid``: ``reid_raw.json`` / ``data_captions.json`` + ``imgs/`` with
train, test and val entries.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

IN_SCHEMA = "man,short black hair,red t-shirt,blue jeans,white sneakers,black backpack"
OUT_OF_SCHEMA = "man,black hair,black cape,pink shorts,black shoes,unknown"
IDENTITIES = (7, 8, 12, 20)
IMAGES_PER_IDENTITY = 4
MISSING = "Part1/8/3.jpg"
CORRUPT = "Part1/12/2.jpg"
MALFORMED = "Part1/20/1.jpg"  # its attribute string has five phrases
DUPLICATE = "Part1/7/2.jpg"  # listed again at the end of the file
CAPE = "Part1/7/1.jpg"
SYNTHPEDES_EXPECTED = {
    "entries": 17,
    "malformed": 1,
    "duplicates": 1,
    "image_rejected": 2,
    "written": 13,
    "attributes_out_of_schema": 1,
    "entries_out_of_schema": 1,
}


def person_image(seed: int, size: tuple[int, int] = (64, 160)) -> Image.Image:
    """A small image whose colours depend on ``seed`` (so every sample differs)."""
    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 29) % 256))
    image.paste(((seed * 11) % 256, 200, 90), (8, 20 + seed % 30, size[0] - 8, 80 + seed % 30))
    return image


def _save(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    person_image(seed).save(path, quality=95)


def write_synthpedes(root: Path) -> Path:
    entries = []
    for identity in IDENTITIES:
        for n in range(1, IMAGES_PER_IDENTITY + 1):
            file_path = f"Part1/{identity}/{n}.jpg"
            if file_path != MISSING:
                _save(root / file_path, identity * 10 + n)
            attributes = OUT_OF_SCHEMA if file_path == CAPE else IN_SCHEMA
            if file_path == MALFORMED:
                attributes = "man,short black hair,red t-shirt,blue jeans,white sneakers black backpack"
            entries.append(
                {
                    "id": identity,
                    "file_path": file_path,
                    "attributes": [attributes],
                    "captions": [
                        f"A man in a red t-shirt, picture {identity}-{n}.",
                        f"He walks in blue jeans ({identity}/{n}).",
                    ],
                    "prompt_caption": [f"The man with short black hair, number {identity}-{n}."],
                }
            )
    whole = io.BytesIO()
    person_image(1).save(whole, format="JPEG")
    (root / CORRUPT).write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    entries.append(dict(next(e for e in entries if e["file_path"] == DUPLICATE), captions=["Listed twice."]))
    # one entry per line, as our own released file; the reader does not rely on it
    (root / "synthpedes_dataset.json").write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return root


CUHK_CAPTIONS = [
    (
        "A man in a black jacket and blue jeans, carrying a black backpack.",
        "The man wears a black jacket, blue jeans and white sneakers.",
    ),
    ("A woman with long black hair in a red dress.", "She has long black hair and wears a red dress."),
]


def write_cuhk_pedes(root: Path) -> Path:
    """reid_raw.json: identities 1-3 train (two images each), 4 test, 5 val; file paths under imgs/."""
    entries = []
    for identity, split in ((1, "train"), (2, "train"), (3, "train"), (4, "test"), (5, "val")):
        for n in range(2):
            file_path = f"CUHK01/{identity:04d}00{n}.png"
            path = root / "imgs" / file_path
            path.parent.mkdir(parents=True, exist_ok=True)
            person_image(identity * 7 + n).save(path)
            captions = list(CUHK_CAPTIONS[identity % 2])
            entries.append(
                {
                    "split": split,
                    "captions": captions,
                    "file_path": file_path,
                    "processed_tokens": [c.lower().split() for c in captions],
                    "id": identity,
                }
            )
    (root / "reid_raw.json").write_text(json.dumps(entries), encoding="utf-8")
    return root


def write_rstpreid(root: Path) -> Path:
    """data_captions.json: identities 0-1 train (three images each), 2 test."""
    entries = []
    for identity, split in ((0, "train"), (1, "train"), (2, "test")):
        for n in range(3):
            img_path = f"{identity:04d}_c{n}_{n:04d}.jpg"
            path = root / "imgs" / img_path
            path.parent.mkdir(parents=True, exist_ok=True)
            person_image(identity * 5 + n + 100).save(path)
            entries.append(
                {"id": identity, "img_path": img_path, "captions": list(CUHK_CAPTIONS[identity % 2]), "split": split}
            )
    (root / "data_captions.json").write_text(json.dumps(entries), encoding="utf-8")
    return root
