"""A labelled folder of rendered people: the `<root>/<identity>/<n>.jpg` layout the pipeline reads,
plus `labels.jsonl` with each image's ground truth."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tqdm import tqdm

from common.digests import stable_int
from spac.render.identity import random_identity
from spac.render.person import render_person


def render_dataset(
    root: str | Path,
    identities: int,
    images_per_identity: int,
    seed: int = 0,
    hidden_fraction: float = 0.15,
    *,
    quality: int = 90,
    progress: bool = False,
) -> list[dict]:
    """Write `<root>/<identity:05d>/<n:03d>.jpg` and `<root>/labels.jsonl`; return the label records.

    Each record: file_path (relative to root), id, attributes (the identity's full set), visible.
    Same arguments, byte-identical files.
    """
    if identities < 1 or images_per_identity < 1:
        raise ValueError(f"need at least one identity and one image each, got {identities} x {images_per_identity}")
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be between 1 and 95, got {quality}")
    root = Path(root)
    records = []
    bar = tqdm(total=identities * images_per_identity, unit="img", disable=not progress, desc="render")
    for identity in range(identities):
        attributes = random_identity(random.Random(stable_int(seed, identity)))
        folder = root / f"{identity:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(images_per_identity):
            image, visible = render_person(attributes, stable_int(seed, identity, n), hidden_fraction=hidden_fraction)
            relative = f"{identity:05d}/{n:03d}.jpg"
            image.save(root / relative, "JPEG", quality=quality)
            records.append({"file_path": relative, "id": identity, "attributes": attributes, "visible": visible})
            bar.update()
    bar.close()
    with open(root / "labels.jsonl", "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return records
