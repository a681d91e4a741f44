"""Human-style captions (tests/spac/mining/data/human_captions.yaml) written as the three caption-file layouts:
CUHK-PEDES reid_raw.json, ICFG-PEDES ICFG_PEDES.json (one caption an image) and RSTPReid data_captions.json."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "mining" / "data" / "human_captions.yaml"


def human_images() -> list[list[str]]:
    return [image["captions"] for image in yaml.safe_load(DATA.read_text(encoding="utf-8"))["images"]]


def write_caption_files(folder: Path) -> list[Path]:
    """The captions split over the three layouts; every caption lands in exactly one file."""
    images = human_images()
    cuhk = [
        {
            "split": "train",
            "captions": captions,
            "file_path": f"CUHK01/{i:07d}.png",
            "processed_tokens": [c.lower().rstrip(".").split() for c in captions],
            "id": i + 1,
        }
        for i, captions in enumerate(images[:30])
    ]
    icfg = [
        {
            "split": "test",
            "captions": [caption],
            "file_path": f"test/{i:04d}/{i:04d}_001.jpg",
            "processed_tokens": [caption.lower().rstrip(".").split()],
            "id": i,
        }
        for i, captions in enumerate(images[30:50])
        for caption in captions
    ]
    rstp = [
        {"id": i, "img_path": f"{i:04d}_c{i % 6}_{i:04d}.jpg", "captions": captions, "split": "train"}
        for i, captions in enumerate(images[50:])
    ]
    paths = []
    for name, data in (("reid_raw.json", cuhk), ("ICFG_PEDES.json", icfg), ("data_captions.json", rstp)):
        path = folder / name
        path.write_text(json.dumps(data, indent=1), encoding="utf-8")
        paths.append(path)
    return paths
