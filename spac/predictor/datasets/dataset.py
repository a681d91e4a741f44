"""What every attribute dataset reader returns: image files with partial labels (and the dataset's own bits), by split.

A :class:`LabelledSplit` is a sequence of ``(PIL image, labels)`` examples, read from disk when indexed, so a
DataLoader can fetch any of them from any worker; its ``labels`` (and ``bits``) are in memory, so class
balancing and evaluation never open an image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from common.digests import stable_int
from common.errors import InputError, error_line
from common.paths import PathOutsideRoot, contained_path
from shards.images import ImageRejected, open_image_file
from spac.predictor.datasets.mapping import DatasetMapping
from spac.predictor.labels import GroupLabel

SPLITS = ("train", "val", "test")


def load_image(path: Path) -> Image.Image:
    """An image file as upright RGB under the project's one decode policy (:mod:`shards.images`: a regular
    file only, bounded bytes and pixels, so a decompression bomb is refused; 16-bit images scaled, not
    clipped); InputError naming the file when it is refused or cannot be read."""
    try:
        return open_image_file(str(path))
    except ImageRejected as exc:
        raise ImageRejected(f"{path}: cannot read image ({exc})") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such image file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({error_line(exc)})") from None


@dataclass
class LabelledSplit(Sequence):
    """One split of a dataset: ``paths[i]`` with ``labels[i]`` (group -> GroupLabel) and, for a dataset with
    binary attributes, ``bits[i]`` (int8 1 / 0 / -1 = not said, aligned with the mapping's attributes)."""

    name: str
    paths: list[Path]
    labels: list[dict[str, GroupLabel]]
    bits: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.paths) or (self.bits is not None and len(self.bits) != len(self.paths)):
            raise ValueError(f"split {self.name!r}: {len(self.paths)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Image.Image, dict[str, GroupLabel]]:  # type: ignore[override]
        return load_image(self.paths[index]), self.labels[index]

    def subset(self, indices: Iterable[int], name: str | None = None) -> LabelledSplit:
        chosen = list(indices)
        return LabelledSplit(
            name or self.name,
            [self.paths[i] for i in chosen],
            [self.labels[i] for i in chosen],
            None if self.bits is None else self.bits[chosen],
        )


@dataclass
class AttributeDataset:
    """A dataset read by one of the readers: its splits, its mapping (None for mined labels) and a report of
    what reading it found (contradicting annotations, attributes the mapping does not know, ...)."""

    name: str
    root: Path
    mapping: DatasetMapping | None
    splits: dict[str, LabelledSplit]
    report: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> LabelledSplit:
        if name not in self.splits:
            raise InputError(f"{self.name} at {self.root} has no {name!r} split (it has {', '.join(self.splits)})")
        return self.splits[name]


def aligned_bits(
    labels: np.ndarray, names: Sequence[str], mapping: DatasetMapping, what: str
) -> tuple[np.ndarray, list[str]]:
    """A file's label columns reordered to the mapping's attributes (-1 for one the file lacks) and the names
    of the file's columns the mapping does not know."""
    bits = np.full((labels.shape[0], len(mapping.attributes)), -1, dtype=np.int8)
    ignored = []
    for column, name in enumerate(names):
        target = mapping.column(name)
        if target is None:
            ignored.append(name)
        else:
            bits[:, target] = labels[:, column]
    return bits, ignored


def hashed_split(key: str, fractions: Mapping[str, float], salt: str) -> str:
    """The split a key falls in, by a stable hash: the same key always lands in the same split.

    ``fractions`` maps split names to shares summing to 1, e.g. {"train": 0.9, "val": 0.1}.
    """
    point = stable_int(salt, key, bits=32) / 2**32
    total = 0.0
    for name, share in fractions.items():
        total += share
        if point < total:
            return name
    return next(reversed(fractions))


def split_off(
    split: LabelledSplit, keys: Sequence[str], fraction: float, salt: str
) -> tuple[LabelledSplit, LabelledSplit]:
    """(train, val): ``fraction`` of the keys (e.g. person ids, so one person stays on one side) move to val."""
    if not 0 < fraction < 1:
        raise InputError(f"a validation fraction must be between 0 and 1, got {fraction}")
    side = [hashed_split(k, {"val": fraction, "train": 1 - fraction}, salt) for k in keys]
    return (
        split.subset([i for i, s in enumerate(side) if s == "train"], "train"),
        split.subset([i for i, s in enumerate(side) if s == "val"], "val"),
    )


def first_existing(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``root / c`` that exists; InputError listing where it looked."""
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    raise InputError(f"{root}: no {what} (looked for {', '.join(candidates)})")


def image_folder(root: Path, candidates: Sequence[str], probe: str) -> Path:
    """The first candidate folder under ``root`` that holds the image ``probe``."""
    for candidate in candidates:
        if (root / candidate / probe).is_file():
            return root / candidate
    raise InputError(f"{root}: cannot find image {probe!r} in any of {', '.join(c or '.' for c in candidates)}")


def image_paths(folder: Path, names: Sequence[str], what: str) -> list[Path]:
    """``folder / name`` for each image name a data file gives (``what`` says where they come from);
    PathOutsideRoot naming the entry when one is absolute, has a '..' part, or resolves outside ``folder``
    through a symbolic link (:func:`common.paths.contained_path`): a dataset never reads outside itself."""
    paths = []
    for number, name in enumerate(names):
        try:
            paths.append(contained_path(folder, name))
        except PathOutsideRoot as exc:
            raise PathOutsideRoot(f"{what} {number}: {exc}") from None
    return paths


def check_files(paths: Sequence[Path], dataset: str) -> None:
    """InputError naming the first missing image and how many are missing (before any training starts)."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"{dataset}: {len(missing)} of {len(paths)} image files are missing, e.g. {missing[0]}")
