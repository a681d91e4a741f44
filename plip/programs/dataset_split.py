"""`python -m plip.dataset_split`: split dataset JSON files into <NAME>-train/-test/-valid.json beside the input.

With no arguments, run from the folder holding ``data/``: splits ``data/CUHK-PEDES/reid_raw.json``,
``data/ICFG-PEDES/ICFG_PEDES.json`` and ``data/RSTPReid/data_captions.json`` (whichever exist) by each entry's
``split`` ("train" -> train, "test" -> test, anything else such as "val" -> valid), as the released tool does.
The output is the released tool's for every dataset: JSON lists of ``{split, captions, file_path, ...}``
entries, which its loaders (and ours) read; CUHK-PEDES / ICFG-PEDES entries are written as they are, RSTPReid's
with ``img_path`` renamed ``file_path`` (:func:`plip.programs.eval_data.as_reid_raw`). A file without ``split``
(our ``synthpedes_dataset.json``) is split by identity instead: a seeded shuffle of the sorted identities puts
whole identities into test and valid, so no identity is in two splits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.cli import CliError, OneLineArgumentParser, run_main
from common.errors import InputError
from plip.programs.eval_data import (
    DATASET_JSON,
    DATASET_NAMES,
    SPLITS,
    DatasetFormatError,
    read_dataset_json,
    split_group,
)
from plip.programs.settings import from_flags

PROG = "python -m plip.dataset_split"
# (name, path under --data-root) of each dataset split without --input: "<name>/<its JSON file>"
DEFAULT_DATASETS = tuple((name, f"{name}/{json_name}") for name, json_name in DATASET_JSON.items())
DEFAULT_TEST_FRACTION = 0.05
DEFAULT_VALID_FRACTION = 0.05

Splits = dict[str, list[dict[str, Any]]]


def split_by_field(entries: Sequence[dict[str, Any]]) -> Splits:
    """Route entries by their ``split`` field; order within each split is the input order."""
    splits: Splits = {name: [] for name in SPLITS}
    for entry in entries:
        splits[split_group(entry["split"])].append(entry)
    return splits


def _count(fraction: float, total: int) -> int:
    """Identities for a fraction: rounded, but at least one when the fraction is positive."""
    return max(1, round(fraction * total)) if fraction > 0 else 0


def split_by_identity(
    entries: Sequence[dict[str, Any]], test_fraction: float, valid_fraction: float, seed: int
) -> Splits:
    """Whole identities to test / valid / train by a seeded shuffle of the sorted identity list."""
    for flag, value in (("test", test_fraction), ("valid", valid_fraction)):
        if not 0 <= value < 1:
            raise InputError(f"the {flag} fraction must be in [0, 1), got {value}")
    identities = sorted({entry["id"] for entry in entries})
    random.Random(seed).shuffle(identities)
    n_test, n_valid = _count(test_fraction, len(identities)), _count(valid_fraction, len(identities))
    if n_test + n_valid >= len(identities):
        raise InputError(
            f"{len(identities)} identities are too few for test fraction {test_fraction} and "
            f"valid fraction {valid_fraction}: no identity would be left for training"
        )
    group = {identity: "test" for identity in identities[:n_test]}
    group.update({identity: "valid" for identity in identities[n_test : n_test + n_valid]})
    splits: Splits = {name: [] for name in SPLITS}
    for entry in entries:
        splits[group.get(entry["id"], "train")].append(entry)
    return splits


def split_paths(input_path: Path, name: str) -> dict[str, Path]:
    return {split: input_path.parent / f"{name}-{split}.json" for split in SPLITS}


def write_json_atomically(path: Path, entries: list[dict[str, Any]]) -> None:
    """Deterministic JSON (released layout: 4-space indent), written to a temporary name then renamed."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(entries, indent=4) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def split_dataset(input_path: Path, test_fraction: float | None, valid_fraction: float | None, seed: int) -> Splits:
    """Read, validate and split one file; the splitting rule follows whether entries carry ``split``."""
    entries = read_dataset_json(input_path, require_split=False)
    with_split = ["split" in entry for entry in entries]
    if all(with_split):
        if test_fraction is not None or valid_fraction is not None:
            raise InputError(
                f"{input_path}: entries carry 'split'; the test / valid fractions apply only to files without it"
            )
        return split_by_field(entries)
    if any(with_split):
        index = with_split.index(not with_split[0])
        raise DatasetFormatError(f"{input_path}: entry {index}: 'split' must be present in all entries or in none")
    try:
        return split_by_identity(
            entries,
            DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction,
            DEFAULT_VALID_FRACTION if valid_fraction is None else valid_fraction,
            seed,
        )
    except InputError as exc:
        raise InputError(f"{input_path}: {exc}") from None


def _parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG,
        description=f"Split {DATASET_NAMES} or SYNTH-PEDES JSON files into <NAME>-train.json, "
        "<NAME>-test.json and <NAME>-valid.json beside the input (entries by their 'split'; "
        "files without it by identity).",
    )
    parser.add_argument(
        "--input",
        type=Path,
        help="one JSON file to split instead of the default datasets under "
        "--data-root (CUHK-PEDES / ICFG-PEDES / SYNTH-PEDES layout, or "
        "RSTPReid's data_captions.json layout)",
    )
    parser.add_argument(
        "--name", help="output name prefix for --input (default: the input's folder name, e.g. SYNTH-PEDES)"
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=Path("data"),
        help="folder searched without --input for "
        f"{', '.join(relative for _, relative in DEFAULT_DATASETS)} (default: data)",
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        help=f"for files without 'split': share of identities for test (default {DEFAULT_TEST_FRACTION})",
    )
    parser.add_argument(
        "--valid-fraction",
        type=float,
        help=f"for files without 'split': share of identities for valid (default {DEFAULT_VALID_FRACTION})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the identity shuffle (default 0)")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    return parser


@dataclass(frozen=True)
class SplitSettings:
    """The program's flags: what the split reads instead of the parsed Namespace."""

    input: Path | None
    name: str | None
    data_root: Path
    test_fraction: float | None
    valid_fraction: float | None
    seed: int
    quiet: bool

    @classmethod
    def from_flags(cls, args: argparse.Namespace) -> SplitSettings:
        return from_flags(cls, args)


def _inputs(settings: SplitSettings) -> list[tuple[str, Path]]:
    if settings.input is not None:
        return [(settings.name or settings.input.resolve().parent.name, settings.input)]
    if settings.name:
        raise CliError("--name needs --input")
    found = [
        (name, settings.data_root / relative)
        for name, relative in DEFAULT_DATASETS
        if (settings.data_root / relative).is_file()
    ]
    if not found:
        paths = [str(settings.data_root / relative) for _, relative in DEFAULT_DATASETS]
        expected = ", ".join(paths[:-1]) + " or " + paths[-1]
        raise CliError(f"no dataset found: expected {expected} (or pass --input FILE)")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plip.dataset_split``: bad input is one line on stderr and exit code 2."""
    return run_main(PROG, _main, argv)


def _main(argv: Sequence[str] | None) -> int:
    settings = SplitSettings.from_flags(_parser().parse_args(argv))
    for name, input_path in _inputs(settings):
        splits = split_dataset(input_path, settings.test_fraction, settings.valid_fraction, settings.seed)
        paths = split_paths(input_path, name)
        for split, entries in splits.items():
            write_json_atomically(paths[split], entries)
        if not settings.quiet:
            print(f"{input_path}:")
            for split, entries in splits.items():
                identities = len({entry["id"] for entry in entries})
                print(f"  {split:<5} {len(entries):>8} entries {identities:>7} identities -> {paths[split]}")
    return 0
