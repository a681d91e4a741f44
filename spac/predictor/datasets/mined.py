"""Attribute labels mined from human captions (``spac mine-labels``): a parquet table with the columns
``file_path, id, split, gender, hair, upper, lower, shoes, belongings, source`` (spac.cli.mine_labels).

Image ``i`` is ``images_root / file_path``. Labels are what the captions said (spac.predictor.labels.said_labels:
``unknown`` is masked, bare values leave the colour open, generic ones the item), with the generic items'
meanings from templates/attribute_datasets/mined.yaml. Splits come from the ``split`` column (CUHK-PEDES and
RSTPReid have train / val / test, ICFG-PEDES train / test); with no validation rows, ``val_fraction`` of the
training *people* (by a hash of source and id) become the validation split.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from common.errors import InputError, error_line
from spac.attributes import GROUP_ORDER, Schema, load_schema
from spac.predictor.datasets.dataset import AttributeDataset, LabelledSplit, check_files, image_paths, split_off
from spac.predictor.labels import check_label, said_labels, specific_items

COLUMNS = ("file_path", "id", "split", *GROUP_ORDER)
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def load_generic_items(schema: Schema | None = None, path: str | Path | None = None) -> dict[str, tuple[str, ...]]:
    """Generic item -> the specific items it stands for (templates/attribute_datasets/mined.yaml), validated."""
    schema = schema if schema is not None else load_schema()
    source = str(path) if path is not None else "templates/attribute_datasets/mined.yaml"
    text = (
        Path(path).read_text(encoding="utf-8")
        if path is not None
        else resources.files("templates").joinpath("attribute_datasets", "mined.yaml").read_text(encoding="utf-8")
    )
    data = yaml.safe_load(text)
    raw = data.get("generic_items") if isinstance(data, dict) else None
    if not isinstance(raw, dict):
        raise InputError(f"{source}: generic_items: expected a mapping of generic item -> specific items")
    generic = {i.name: g for g in schema.groups for i in g.items if i.generic}
    result = {}
    for item, group in generic.items():
        meant = raw.get(item)
        if not isinstance(meant, list) or not meant:
            raise InputError(f"{source}: generic_items.{item}: expected the specific items it stands for")
        for name in meant:
            if name not in specific_items(group):
                raise InputError(
                    f"{source}: generic_items.{item}: {name!r} is not a specific item of group {group.name!r}"
                )
        result[item] = tuple(meant)
    extra = sorted(set(raw) - set(generic))
    if extra:
        raise InputError(f"{source}: generic_items.{extra[0]}: not a generic item of the schema")
    return result


@functools.lru_cache(maxsize=8)
def _bundled_generic_items() -> Mapping[str, tuple[str, ...]]:
    return load_generic_items()


def read_mined(
    table_path: str | Path,
    images_root: str | Path,
    schema: Schema | None = None,
    val_fraction: float = 0.1,
    check_images: bool = True,
) -> AttributeDataset:
    """The splits of a mined-labels parquet table, images under ``images_root``."""
    table_path, images_root = Path(table_path), Path(images_root)
    schema = schema if schema is not None else load_schema()
    generic = _bundled_generic_items() if schema is load_schema() else load_generic_items(schema)
    try:
        table = pq.read_table(table_path)
    except FileNotFoundError:
        raise InputError(f"{table_path}: no such file") from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{table_path}: not a readable parquet table ({error_line(exc)})") from None
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{table_path}: no column {missing[0]!r}; expected a table of `spac mine-labels`")
    columns = {c: table.column(c).to_pylist() for c in COLUMNS}
    sources = table.column("source").to_pylist() if "source" in table.column_names else [""] * table.num_rows
    rows: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    names, labels, keys = [], [], []
    for i in range(table.num_rows):
        split = SPLIT_NAMES.get(str(columns["split"][i]).strip().lower())
        if split is None:
            raise InputError(f"{table_path}: row {i}: split {columns['split'][i]!r} is not train, val or test")
        try:
            row = said_labels({g: columns[g][i] for g in GROUP_ORDER}, schema, generic)
        except (ValueError, KeyError) as exc:
            raise InputError(f"{table_path}: row {i}: {str(exc).strip(chr(34))}") from None
        for group in schema.groups:
            check_label(group, row[group.name], f"{table_path}: row {i}")
        rows[split].append(i)
        names.append(str(columns["file_path"][i]))
        labels.append(row)
        keys.append(f"{sources[i]}/{columns['id'][i]}")
    if not names:
        raise InputError(f"{table_path}: no rows")
    everything = LabelledSplit("all", image_paths(images_root, names, f"{table_path}: row"), labels)
    splits = {name: everything.subset(chosen, name) for name, chosen in rows.items()}
    if not rows["val"] and rows["train"]:
        splits["train"], splits["val"] = split_off(
            splits["train"], [keys[i] for i in rows["train"]], val_fraction, "mined"
        )
    if check_images:
        for split in splits.values():
            check_files(split.paths, f"mined labels {split.name}")
    return AttributeDataset(
        "mined captions",
        table_path,
        None,
        splits,
        {"table": str(table_path), "images": str(images_root), "rows": len(names)},
    )
