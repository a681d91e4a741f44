"""A released-format dataset whose entries are hostile one at a time (issue 19), for the import job's tests:
``HOSTILE`` maps each entry's ``file_path`` to what must become of it (``"kept"`` or a dead letter's stage and
a piece of its reason); ``build_hostile_dataset`` writes it (raw bytes: one caption holds an undecodable byte).
``run_in_subprocess`` runs a job that might block with a time limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.pipelines.import_datasets import IN_SCHEMA, person_image

GOOD, ALSO_GOOD = "Part1/1/1.jpg", "Part1/5/1.jpg"
# file_path -> (stage, a piece of the reason) of its dead letter, or "kept"
HOSTILE: dict[str, tuple[str, str] | str] = {
    GOOD: "kept",
    "Part1/1/2.jpg": ("parse", "not valid Unicode"),  # a raw 0xff byte in a caption
    "Part1/1/3.jpg": ("parse", "not valid Unicode"),  # a "\ud800" escape in a caption
    "Part1/1/4\0.jpg": ("parse", "NUL byte"),
    "Part1/1/5.jpg": ("parse", "nested deeper than"),  # an extra key nested 100 deep
    "Part1/./1/1.jpg": ("dedupe", "the same file_path as entry 0"),
    "Part1//1/1.jpg": ("dedupe", "the same file_path as entry 0"),
    "Part1/2/1.jpg": ("decode", "resolves outside"),  # a symlinked file leaving the image root
    "Part1/3/1.jpg": ("decode", "resolves outside"),  # a file in a symlinked folder leaving the root
    ALSO_GOOD: "kept",
}
_RAW_BYTE, _SURROGATE, _DEEP = "Part1/1/2.jpg", "Part1/1/3.jpg", "Part1/1/5.jpg"


def _entry(file_path: str, number: int) -> dict:
    return {
        "id": number,
        "file_path": file_path,
        "attributes": [IN_SCHEMA],
        "captions": [f"A man in a red t-shirt, picture {number}."],
        "prompt_caption": [],
    }


def _line(file_path: str, number: int) -> bytes:
    line = json.dumps(_entry(file_path, number)).encode()
    if file_path == _RAW_BYTE:
        return line.replace(b"red t-shirt", b"red \xff t-shirt")
    if file_path == _SURROGATE:
        return line.replace(b"red t-shirt", b"red \\ud800 t-shirt")
    if file_path == _DEEP:
        return line[:-1] + b', "extra": ' + b"[" * 100 + b"]" * 100 + b"}"
    return line


def build_hostile_dataset(root: Path) -> Path:
    """``root/synthpedes_dataset.json`` with the entries of :data:`HOSTILE`, their images under ``root``, and
    ``root/../outside`` holding the images two symbolic links lead to."""
    outside = root.parent / "outside"
    (outside / "folder").mkdir(parents=True)
    for number, name in enumerate((GOOD, _RAW_BYTE, _SURROGATE, _DEEP, ALSO_GOOD)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        person_image(number + 1).save(root / name, quality=95)
    person_image(9).save(outside / "secret.jpg")
    person_image(10).save(outside / "folder" / "1.jpg")
    (root / "Part1/2").mkdir(parents=True)
    os.symlink(outside / "secret.jpg", root / "Part1/2/1.jpg")
    os.symlink(outside / "folder", root / "Part1/3")
    lines = [_line(name, number + 1) for number, name in enumerate(HOSTILE)]
    (root / "synthpedes_dataset.json").write_bytes(b"[\n" + b",\n".join(lines) + b"\n]\n")
    return root


def run_in_subprocess(code: str, timeout: float) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter at the repository root: a job that blocks (a FIFO opened, a regular
    expression backtracking for ever) fails the test at ``timeout`` instead of hanging the suite."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout, check=False
    )


REPOSITORY = Path(__file__).resolve().parents[2]
