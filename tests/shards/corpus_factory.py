"""Small synthetic corpora for the shards tests: distinct images and valid records, deterministic."""

from __future__ import annotations

import os
import tarfile
from typing import Any

from PIL import Image

from shards import GROUPS, encode_image, make_sample, write_manifest, write_shard

VALUES = {
    "gender": "woman",
    "hair": "long black hair",
    "upper": "red t-shirt",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": "unknown",
}


def make_record(index: int, **overrides: Any) -> dict[str, Any]:
    identity = index // 3
    record = {
        "key": f"p{identity:05d}_{index:06d}",
        "id": identity,
        "file_path": f"Part1/{identity}/{index}.jpg",
        "attributes": {g: {"value": VALUES[g], "confidence": 0.5 + (index % 5) / 10} for g in GROUPS},
        "captions": [f"A woman number {index} in a red t-shirt.", f"She wears blue jeans ({index})."],
        "styles": ["plain", "detailed"],
        "prompt_caption": [f"The woman with long black hair, case {index}."],
        "source": f"/raw/cam1/{index}.png",
    }
    record.update(overrides)
    return record


def make_image(index: int) -> Image.Image:
    """A small image whose colours depend on the index, so every sample's JPEG differs."""
    image = Image.new("RGB", (48, 96), ((index * 37) % 256, (index * 91) % 256, (index * 13) % 256))
    image.paste((255 - (index * 37) % 256, 40, 200), (8, 8 + index % 40, 40, 30 + index % 40))
    return image


def make_samples(start: int, count: int) -> list[dict[str, Any]]:
    return [make_sample(make_record(i), encode_image(make_image(i))) for i in range(start, start + count)]


def write_corpus(directory: str, shards: int, per_shard: int) -> list[dict[str, Any]]:
    """Write ``shards`` shards of ``per_shard`` samples and the manifest; return every sample, key order."""
    samples = make_samples(0, shards * per_shard)
    for index in range(shards):
        write_shard(directory, index, samples[index * per_shard : (index + 1) * per_shard])
    write_manifest(directory)
    return samples


def write_tar(path: Any, members: list[tuple[Any, bytes | int]]) -> str:
    """A tar of ``(name or TarInfo, data)`` members; an int ``data`` is that many zero bytes, left as a hole
    in the file (sparse: a member of hundreds of MiB costs no disk and no time to write)."""
    with open(path, "wb") as stream:
        for name, data in members:
            info = name if isinstance(name, tarfile.TarInfo) else tarfile.TarInfo(name)
            size = data if isinstance(data, int) else len(data)
            if info.isreg():
                info.size = size
            stream.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            padded = -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if isinstance(data, int):
                stream.seek(padded, os.SEEK_CUR)
            else:
                stream.write(data + b"\0" * (padded - size))
        stream.write(b"\0" * tarfile.RECORDSIZE)
    return str(path)
