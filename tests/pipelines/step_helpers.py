"""Helpers shared by the pipeline step tests."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import apache_beam as beam

from tests.pipelines.colour_predictor import PROFILES, RED, solid_image


def split(outputs_):
    """(main outputs, dead letters) of a DoFn's process()."""
    main = [o for o in outputs_ if not isinstance(o, beam.pvalue.TaggedOutput)]
    return main, tagged(outputs_, "dead_letter")


def tagged(outputs_, tag: str) -> list:
    """The values a DoFn's process() yielded on output ``tag``."""
    return [o.value for o in outputs_ if isinstance(o, beam.pvalue.TaggedOutput) and o.tag == tag]


def jpeg(colour) -> bytes:
    buffer = io.BytesIO()
    solid_image(colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def record(key, identity, gender="man"):
    attributes = {g: {"value": v, "confidence": 0.9} for g, v in PROFILES[RED].items()}
    attributes["gender"]["value"] = gender
    return {
        "key": key,
        "identity": identity,
        "file_path": f"{identity}/{key}.jpg",
        "source": f"/in/{key}.jpg",
        "jpg": b"\xff\xd8\xff",
        "attributes": attributes,
    }


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """A tar of (member name, bytes), in this order (what img2dataset or webdataset's TarWriter write)."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
