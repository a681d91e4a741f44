"""Tiny made-up CUHK-PEDES style datasets for the plip tests: one flat colour per identity."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

COLOURS = {0: (200, 30, 30), 1: (30, 200, 30), 2: (30, 30, 200), 3: (200, 200, 30), 4: (30, 200, 200),
           5: (200, 30, 200)}
NAMES = {0: "red", 1: "green", 2: "blue", 3: "yellow", 4: "cyan", 5: "magenta"}


def make_entries(splits: dict[int, str], images_per_id: int = 2) -> list[dict]:
    """Entries for identities ``splits`` (id -> split), each with two captions naming the identity's colour."""
    entries = []
    for identity, split in splits.items():
        for n in range(images_per_id):
            captions = [f"a person in {NAMES[identity]} clothes", f"the {NAMES[identity]} pedestrian walks"]
            entries.append({"split": split, "captions": captions, "file_path": f"{identity}/{n}.jpg",
                            "processed_tokens": [c.split() for c in captions], "id": identity})
    return entries


def write_dataset(root: Path, entries: list[dict], json_name: str = "reid_raw.json") -> Path:
    """Write ``entries`` as ``root/json_name`` and one small image per entry under ``root/imgs``."""
    for entry in entries:
        image_path = root / "imgs" / entry["file_path"]
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24, 48), COLOURS[entry["id"]]).save(image_path)
    root.mkdir(parents=True, exist_ok=True)
    (root / json_name).write_text(json.dumps(entries), encoding="utf-8")
    return root / json_name
