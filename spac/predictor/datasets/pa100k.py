"""PA-100K (Liu et al., "HydraPlus-Net", ICCV 2017): 100,000 pedestrian crops, 26 binary attributes.

The release ships ``annotation.mat`` (at the root or in ``annotation/``) with ``attributes`` (the 26 names,
REFERENCE §6 order), ``train_images_name`` / ``train_label`` (80,000), ``val_images_name`` / ``val_label``
(10,000) and ``test_images_name`` / ``test_label`` (10,000); labels are 0/1 and the images sit in ``data/``,
``data/release_data/release_data/`` or ``release_data/release_data/``. (Layout as the public readers of the
release load it, e.g. ``loadmat(...)['train_images_name'][i][0][0]`` under ``data/release_data/release_data``;
looked up with the search tool.) The bits map to the six groups through templates/attribute_datasets/pa100k.yaml.

:func:`write_pa100k` writes labelled images in the same format (the tests and benchmarks export rendered
people with it; any tool that reads PA-100K reads them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from common.errors import InputError
from spac.attributes import Schema
from spac.predictor.datasets.dataset import (
    SPLITS,
    AttributeDataset,
    LabelledSplit,
    aligned_bits,
    check_files,
    first_existing,
    image_folder,
    image_paths,
)
from spac.predictor.datasets.mapping import DatasetMapping, load_mapping
from spac.predictor.datasets.matfiles import load_mat, matrix, strings

ANNOTATION_FILES = ("annotation.mat", "annotation/annotation.mat")
IMAGE_FOLDERS = ("data/release_data/release_data", "release_data/release_data", "data", "")


def read_pa100k(
    root: str | Path, schema: Schema | None = None, mapping: DatasetMapping | None = None, check_images: bool = True
) -> AttributeDataset:
    """The train / val / test splits of a PA-100K folder, labelled through the PA-100K mapping."""
    root = Path(root)
    mapping = mapping or load_mapping("pa100k", schema)
    annotation = first_existing(root, ANNOTATION_FILES, "PA-100K annotation.mat")
    data = load_mat(annotation)
    for key in ("attributes", *(f"{s}_{k}" for s in SPLITS for k in ("images_name", "label"))):
        if key not in data:
            raise InputError(f"{annotation}: no variable {key!r}; not a PA-100K annotation.mat")
    names = strings(data["attributes"], f"{annotation}: attributes")
    missing = [a for a in mapping.attributes if a not in {mapping.aliases.get(n, n) for n in names}]
    if missing:
        raise InputError(f"{annotation}: attributes lack {missing[0]!r}; not PA-100K's 26 attributes")
    splits, ignored, contradictions, folder = {}, [], 0, None
    for split in SPLITS:
        images = strings(data[f"{split}_images_name"], f"{annotation}: {split}_images_name")
        labels = matrix(data[f"{split}_label"], len(images), len(names), f"{annotation}: {split}_label")
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise InputError(f"{annotation}: {split}_label holds values other than 0 and 1")
        bits, ignored = aligned_bits(labels, names, mapping, str(annotation))
        if images and folder is None:
            folder = image_folder(root, IMAGE_FOLDERS, images[0])
        paths = image_paths(folder or root, images, f"{annotation}: {split}_images_name entry")
        if check_images:
            check_files(paths, f"PA-100K {split}")
        split_labels, found = mapping.labels_for(bits)
        contradictions += found
        splits[split] = LabelledSplit(split, paths, split_labels, bits)
    return AttributeDataset(
        "PA-100K",
        root,
        mapping,
        splits,
        {
            "annotation": str(annotation),
            "images": str(folder or root),
            "contradicting_facets": contradictions,
            "ignored_attributes": ignored,
        },
    )


def write_pa100k(
    root: str | Path,
    splits: Mapping[str, Sequence[tuple[Image.Image, Mapping[str, str]]]],
    schema: Schema | None = None,
    mapping: DatasetMapping | None = None,
    suffix: str = ".png",
) -> Path:
    """Write ``split -> [(image, SPAC attributes)]`` as a PA-100K folder: ``data/<000001>.png`` and
    ``annotation.mat``. Each attribute is what the PA-100K mapping says the SPAC values mean (unmapped ones 0);
    PNG keeps the pixels exact. Returns the annotation file."""
    root = Path(root)
    mapping = mapping or load_mapping("pa100k", schema)
    (root / "data").mkdir(parents=True, exist_ok=True)
    variables: dict[str, object] = {"attributes": np.array([[a] for a in mapping.attributes], dtype=object)}
    number = 0
    for split in SPLITS:
        names, rows = [], []
        for image, attributes in splits.get(split, ()):
            number += 1
            name = f"{number:06d}{suffix}"
            image.convert("RGB").save(root / "data" / name)
            names.append([name])
            rows.append(np.maximum(mapping.bits(attributes), 0))
        variables[f"{split}_images_name"] = np.array(names, dtype=object).reshape(len(names), 1)
        variables[f"{split}_label"] = (
            np.array(rows, dtype=np.uint8) if rows else np.zeros((0, len(mapping.attributes)), dtype=np.uint8)
        )
    annotation = root / "annotation.mat"
    scipy.io.savemat(str(annotation), variables)
    return annotation
