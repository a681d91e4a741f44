"""Tiny made-up CUHK-PEDES and RSTPReid style datasets for the plip tests: one flat colour per identity, and a
fake retrieval model that sees only colours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

from plip.transforms import EVAL_MEAN, EVAL_STD

COLOURS = {
    0: (200, 30, 30),
    1: (30, 200, 30),
    2: (30, 30, 200),
    3: (200, 200, 30),
    4: (30, 200, 200),
    5: (200, 30, 200),
}
NAMES = {0: "red", 1: "green", 2: "blue", 3: "yellow", 4: "cyan", 5: "magenta"}


def make_entries(splits: dict[int, str], images_per_id: int = 2) -> list[dict]:
    """Entries for identities ``splits`` (id -> split), each with two captions naming the identity's colour."""
    entries = []
    for identity, split in splits.items():
        for n in range(images_per_id):
            captions = [f"a person in {NAMES[identity]} clothes", f"the {NAMES[identity]} pedestrian walks"]
            entries.append(
                {
                    "split": split,
                    "captions": captions,
                    "file_path": f"{identity}/{n}.jpg",
                    "processed_tokens": [c.split() for c in captions],
                    "id": identity,
                }
            )
    return entries


def make_rstpreid_entries(splits: dict[int, str], images_per_id: int = 5) -> list[dict]:
    """RSTPReid ``data_captions.json`` entries (``{id, img_path, captions, split}``, images flat in ``imgs/``,
    named identity_camera_frame as RSTPReid's are) for identities ``splits``, two captions per image."""
    entries = []
    for identity, split in splits.items():
        for n in range(images_per_id):
            captions = [
                f"a person in {NAMES[identity]} clothes seen by camera {n}",
                f"the {NAMES[identity]} pedestrian walks",
            ]
            entries.append(
                {
                    "id": identity,
                    "img_path": f"{identity:04d}_c{n + 1}_{n:04d}.jpg",
                    "captions": captions,
                    "split": split,
                }
            )
    return entries


def write_dataset(root: Path, entries: list[dict], json_name: str = "reid_raw.json") -> Path:
    """Write ``entries`` as ``root/json_name`` and one small image per entry under ``root/imgs`` (at its
    ``file_path``, or ``img_path`` for RSTPReid entries)."""
    for entry in entries:
        image_path = root / "imgs" / entry.get("file_path", entry.get("img_path"))
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 48), COLOURS[entry["id"]]).save(image_path)
    root.mkdir(parents=True, exist_ok=True)
    (root / json_name).write_text(json.dumps(entries), encoding="utf-8")
    return root / json_name


def dataset_fixture(splits: dict[int, str]):
    """A module-scoped fixture: a CUHK-PEDES folder of ``make_entries(splits)`` with its images."""

    @pytest.fixture(scope="module")
    def dataset(tmp_path_factory) -> Path:
        root = tmp_path_factory.mktemp("CUHK-PEDES")
        write_dataset(root, make_entries(splits))
        return root

    return dataset


def rstpreid_fixture(splits: dict[int, str], images_per_id: int = 5):
    """A module-scoped fixture: an RSTPReid folder (``data_captions.json`` + ``imgs/``) of
    ``make_rstpreid_entries(splits, images_per_id)``."""

    @pytest.fixture(scope="module")
    def dataset(tmp_path_factory) -> Path:
        root = tmp_path_factory.mktemp("RSTPReid")
        write_dataset(root, make_rstpreid_entries(splits, images_per_id), "data_captions.json")
        return root

    return dataset


class ColourModel(nn.Module):
    """A fake encoder: an image is its mean colour, a caption the colour it names (or black when none)."""

    def __init__(self, mislabel: dict[str, str] | None = None):
        super().__init__()
        self.mislabel = mislabel or {}
        self.index = {name: i for i, name in NAMES.items()}

    def tokenize(self, texts):
        ids = []
        for text in texts:
            words = [self.mislabel.get(w, w) for w in text.split() if w in self.index]
            ids.append([self.index[words[0]]])
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.ones(len(ids), 1, dtype=torch.long)}

    def encode_text(self, input_ids, attention_mask):
        return torch.tensor([COLOURS[int(i)] for i in input_ids[:, 0]], dtype=torch.float32) / 255

    def encode_image(self, images):
        std, mean = torch.tensor(EVAL_STD).view(1, 3), torch.tensor(EVAL_MEAN).view(1, 3)
        return images.mean(dim=(2, 3)) * std + mean
