"""A folder that mixes good images with every kind of hostile file the job has met, and what each must become.

Used by the hostile-input test (tests/pipelines/test_hostile_inputs.py).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from tests.pipelines.colour_predictor import RED, solid_image

GOOD_PER_IDENTITY = 5


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def hostile_files() -> dict[bytes, tuple[bytes, str]]:
    """relative path (bytes: some names are not UTF-8) -> (file bytes, expected outcome: "kept" or a
    substring of its dead-letter reason)."""
    good = _jpeg(solid_image(RED))
    noisy = _jpeg(Image.effect_noise((128, 256), 60).convert("RGB"))  # headers well before the cut
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        b"b/truncated.jpg": (noisy[: len(noisy) // 2], "corrupt"),
        b"b/text.jpg": (b"not an image at all\n", "not a decodable image"),
        b"b/empty.jpg": (b"", "not a decodable image"),
        b"b/bomb.png": (_png(Image.new("L", (9000, 9000))), "exceed the budget"),
        b"b/huge-file.jpg": (good + b"\x00" * 3_000_000, "file larger than"),
        b"b/caf\xe9.jpg": (good, "not valid UTF-8"),
        b"b/rotated.jpg": (_jpeg(solid_image(RED, size=(256, 128)), exif=exif.tobytes()), "kept"),
        b"b/cmyk.jpg": (_jpeg(solid_image(RED).convert("CMYK")), "kept"),
        b"b/palette.png": (_png(solid_image(RED).convert("P")), "kept"),
        b"b/x.png": (_png(solid_image(RED)), "kept"),
        b"b/too/deep/1.jpg": (good, "layout"),
    }


LINK_NAME, LINK_OUTCOME = "b/link-to-etc.jpg", "not a decodable image"


def build_hostile_folder(root: Path) -> Path:
    for identity in ("a", "b"):
        (root / identity).mkdir(parents=True, exist_ok=True)
        for n in range(GOOD_PER_IDENTITY):
            solid_image(RED).save(root / identity / f"{n}.jpg")
    for name, (data, _) in hostile_files().items():
        path = os.fsencode(root) + b"/" + name
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as stream:
            stream.write(data)
    os.symlink("/etc/hostname", root / LINK_NAME)  # a link to a non-image
    (root / "b" / "folder.jpg").mkdir()  # a directory with an image name: never matched as a file
    (root / "README.txt").write_text("beside the identities: ignored\n")
    return root
