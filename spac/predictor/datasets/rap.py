"""RAP v1 (41,585 images) and RAP v2 (84,928 images), the Richly Annotated Pedestrian datasets (Li et al.).

Both ship ``RAP_annotation.mat`` (at the root or in ``RAP_annotation/``) holding one struct ``RAP_annotation``
and the images in ``RAP_dataset/``. What we rely on (the official repository's scripts, dangweili/RAP
``person-attribute/static/prepare_data.m``, and public Python readers; looked up with the search tool):

- **v2**: ``name`` (image names), ``attribute`` (the names), ``data`` (N x K labels: 0 no, 1 yes, 2 uncertain),
  ``selected_attribute`` (the 54 reported), ``partition_attribute`` (five random partitions, each with 1-based
  ``train_index``, ``val_index``, ``test_index``). The images are PNG files even where ``name`` ends in .jpg
  (prepare_data.m swaps the extension).
- **v1**: ``imagesname``, ``attribute_eng`` (92 names; the first 51 are the reported ones), ``label`` (N x 92),
  ``partion`` (sic: five partitions with 1-based ``train_index`` and ``test_index``; no validation set, so
  ``val_fraction`` of the training images, chosen by a hash of the image name, become one).

Label 2 (uncertain) is "not said". Bits map to the six groups through templates/attribute_datasets/rap1.yaml or
rap2.yaml; file attributes the mapping does not know are ignored, mapped ones the file lacks are "not said".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from common.errors import InputError
from spac.attributes import Schema
from spac.predictor.datasets.dataset import (
    AttributeDataset,
    LabelledSplit,
    aligned_bits,
    check_files,
    first_existing,
    hashed_split,
    image_paths,
)
from spac.predictor.datasets.mapping import NOT_SAID, DatasetMapping, load_mapping
from spac.predictor.datasets.matfiles import field, indices, load_mat, matrix, strings

ANNOTATION_FILES = ("RAP_annotation.mat", "RAP_annotation/RAP_annotation.mat")
IMAGE_FOLDERS = ("RAP_dataset", "images", "")
UNCERTAIN = 2
PARTITIONS = 5


def _version(annotation: Any) -> int:
    if all(hasattr(annotation, f) for f in ("name", "attribute", "data")):
        return 2
    if all(hasattr(annotation, f) for f in ("imagesname", "attribute_eng", "label")):
        return 1
    fields = ", ".join(getattr(annotation, "_fieldnames", []) or [])
    raise InputError(
        f"RAP_annotation has neither v2 fields (name, attribute, data) nor v1 fields (imagesname, "
        f"attribute_eng, label); it has {fields or 'none'}"
    )


def _partition(annotation: Any, version: int, number: int, count: int, where: str) -> dict[str, np.ndarray]:
    name = "partition_attribute" if version == 2 else "partion"
    partitions = np.atleast_1d(np.asarray(field(annotation, name, where), dtype=object)).ravel()
    if not 1 <= number <= len(partitions):
        raise InputError(f"{where}: partition {number} asked for, the file has {len(partitions)}")
    chosen = partitions[number - 1]
    keys = ("train_index", "val_index", "test_index") if version == 2 else ("train_index", "test_index")
    return {
        key.split("_")[0]: indices(
            field(chosen, key, f"{where}.{name}({number})"), count, f"{where}.{name}({number}).{key}"
        )
        for key in keys
    }


def _image_paths(root: Path, names: list[str], what: str) -> list[Path]:
    """Where the images are: the first folder holding the first image as named, or with a .png suffix (each
    name kept inside that folder: :func:`~spac.predictor.datasets.dataset.image_paths`)."""
    probe = names[0]
    for folder in IMAGE_FOLDERS:
        for rename in (False, True):
            candidate = root / folder / (str(Path(probe).with_suffix(".png")) if rename else probe)
            if candidate.is_file():
                return image_paths(
                    root / folder, [str(Path(n).with_suffix(".png")) if rename else n for n in names], what
                )
    raise InputError(
        f"{root}: cannot find image {probe!r} (or its .png) in any of {', '.join(f or '.' for f in IMAGE_FOLDERS)}"
    )


def read_rap(
    root: str | Path,
    schema: Schema | None = None,
    mapping: DatasetMapping | None = None,
    partition: int = 1,
    val_fraction: float = 0.1,
    check_images: bool = True,
) -> AttributeDataset:
    """The train / val / test splits of a RAP v1 or v2 folder (``partition`` 1-5 of the file's partitions)."""
    root = Path(root)
    annotation_file = first_existing(root, ANNOTATION_FILES, "RAP_annotation.mat")
    data = load_mat(annotation_file)
    where = f"{annotation_file}: RAP_annotation"
    if "RAP_annotation" not in data:
        raise InputError(f"{annotation_file}: no variable 'RAP_annotation'; not a RAP annotation file")
    annotation = data["RAP_annotation"]
    version = _version(annotation)
    mapping = mapping or load_mapping(f"rap{version}", schema)
    names = strings(field(annotation, "name" if version == 2 else "imagesname", where), f"{where}.name")
    attributes = strings(
        field(annotation, "attribute" if version == 2 else "attribute_eng", where), f"{where}.attribute"
    )
    labels = matrix(
        field(annotation, "data" if version == 2 else "label", where), len(names), len(attributes), f"{where}.data"
    )
    if labels.size and not np.isin(labels, (0, 1, UNCERTAIN)).all():
        raise InputError(f"{where}.data holds values other than 0, 1 and 2")
    labels = np.where(labels == UNCERTAIN, NOT_SAID, labels)
    bits, ignored = aligned_bits(labels, attributes, mapping, where)
    missing = [
        a
        for a in mapping.mapped
        if mapping.column(a) is not None and a not in {mapping.aliases.get(n, n) for n in attributes}
    ]
    parts = _partition(annotation, version, partition, len(names), where)
    if "val" not in parts:
        keep, val = [], []
        for i in parts["train"]:
            (
                val
                if hashed_split(names[i], {"val": val_fraction, "train": 1 - val_fraction}, "rap") == "val"
                else keep
            ).append(i)
        parts = {"train": np.array(keep, dtype=np.int64), "val": np.array(val, dtype=np.int64), "test": parts["test"]}
    paths = _image_paths(root, names, f"{where}.name entry") if names else []
    splits, contradictions = {}, 0
    for split in ("train", "val", "test"):
        chosen = parts[split]
        split_paths = [paths[i] for i in chosen]
        if check_images:
            check_files(split_paths, f"RAP v{version} {split}")
        split_labels, found = mapping.labels_for(bits[chosen])
        contradictions += found
        splits[split] = LabelledSplit(split, split_paths, split_labels, bits[chosen])
    return AttributeDataset(
        f"RAP v{version}",
        root,
        mapping,
        splits,
        {
            "annotation": str(annotation_file),
            "version": version,
            "partition": partition,
            "contradicting_facets": contradictions,
            "ignored_attributes": ignored,
            "missing_attributes": missing,
        },
    )
