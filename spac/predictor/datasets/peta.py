"""PETA (Deng et al., "Pedestrian attribute recognition at far distance", ACM MM 2014): 19,000 images of ten
re-identification datasets, 61 binary attributes plus 11 colours for each of four body regions.

The release is a folder ``PETA dataset/`` with one folder per subset (3DPeS, CAVIAR4REID, CUHK, GRID, i-LID,
MIT, PRID, SARC3D, TownCentre, VIPeR), each holding ``archive/`` with the images and ``Label.txt``: one line per
person, ``<id> attribute attribute ...`` listing the attributes present; every image whose name starts with
that id (``<id>_*.bmp``, ``<id>.png``; ids compare as numbers, so ``0012`` is ``12``) is that person. (As the
public conversions of the raw release read it: the id is the name's part before the first ``_`` or ``.``;
looked up with the search tool.) Labels map to the six groups through templates/attribute_datasets/peta.yaml.

PETA ships no split. Ours is fixed and by person (a hash of subset and id), in the proportions papers use
(9,500 / 1,900 / 7,600 images): 50% train, 10% val, 40% test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.errors import InputError
from common.paths import contained_path
from spac.attributes import Schema
from spac.predictor.datasets.dataset import AttributeDataset, LabelledSplit, hashed_split
from spac.predictor.datasets.mapping import DatasetMapping, load_mapping

IMAGE_SUFFIXES = (".bmp", ".png", ".jpg", ".jpeg")
SPLIT_SHARES = {"train": 0.5, "val": 0.1, "test": 0.4}


def person_key(name: str) -> str:
    """The person id a Label.txt token or image file name stands for: the part before the first ``_`` or ``.``,
    compared as a number when it is one."""
    head = name.split("_", 1)[0].split(".", 1)[0].strip()
    return str(int(head)) if head.isdigit() else head


def subset_folders(root: Path) -> list[Path]:
    """The subset folders (each with ``archive/Label.txt``) under ``root``, ``root/PETA dataset`` or ``root/PETA``."""
    for base in (root / "PETA dataset", root / "PETA", root):
        found = sorted(d for d in base.iterdir() if (d / "archive" / "Label.txt").is_file()) if base.is_dir() else []
        if found:
            return found
    raise InputError(f"{root}: no PETA subset folders (<subset>/archive/Label.txt) here or in 'PETA dataset/'")


def read_label_file(path: Path, mapping: DatasetMapping) -> tuple[dict[str, np.ndarray], set[str]]:
    """Person id -> bits (aligned with the mapping's attributes) from one Label.txt; and the names it ignored."""
    people: dict[str, np.ndarray] = {}
    ignored: set[str] = set()
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        key = person_key(tokens[0])
        if key in people:
            raise InputError(f"{path}:{number}: person {tokens[0]!r} is labelled twice")
        row = np.zeros(len(mapping.attributes), dtype=np.int8)
        for name in tokens[1:]:
            column = mapping.column(name)
            if column is None:
                ignored.add(name)
            else:
                row[column] = 1
        people[key] = row
    return people, ignored


def read_peta(
    root: str | Path, schema: Schema | None = None, mapping: DatasetMapping | None = None
) -> AttributeDataset:
    """The train / val / test splits of a PETA release folder, labelled through the PETA mapping."""
    root = Path(root)
    mapping = mapping or load_mapping("peta", schema)
    records: dict[str, tuple[list[Path], list[np.ndarray]]] = {s: ([], []) for s in SPLIT_SHARES}
    ignored: set[str] = set()
    unlabelled, people_without_images = 0, 0
    for folder in subset_folders(root):
        archive = folder / "archive"
        people, names = read_label_file(archive / "Label.txt", mapping)
        ignored |= names
        seen = set()
        for image in sorted(p for p in archive.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
            key = person_key(image.name)
            if key not in people:
                unlabelled += 1
                continue
            seen.add(key)
            paths, bits = records[hashed_split(f"{folder.name}/{key}", SPLIT_SHARES, "peta")]
            paths.append(contained_path(archive, image.name))  # a symlink that leaves the folder is refused
            bits.append(people[key])
        people_without_images += len(set(people) - seen)
    if not any(paths for paths, _ in records.values()):
        raise InputError(f"{root}: no PETA image matches a Label.txt id")
    splits, contradictions = {}, 0
    for split, (paths, rows) in records.items():
        bits = np.array(rows, dtype=np.int8).reshape(len(rows), len(mapping.attributes))
        labels, found = mapping.labels_for(bits)
        contradictions += found
        splits[split] = LabelledSplit(split, paths, labels, bits)
    return AttributeDataset(
        "PETA",
        root,
        mapping,
        splits,
        {
            "subsets": [f.name for f in subset_folders(root)],
            "contradicting_facets": contradictions,
            "ignored_attributes": sorted(ignored),
            "images_without_labels": unlabelled,
            "labels_without_images": people_without_images,
        },
    )
