"""Draft-mode JPEG decoding (``decode_image(..., min_size=IMAGE_SIZE)``) against a full decode, one process.

For each kind of source image, the corpus JPEG the job makes (decode -> ``encode_image`` at 256x128) both
ways: the time of each (alternating rounds, medians), and the PSNR and mean absolute difference (grey
levels) between the two corpus images, decoded. Beside them, as a yardstick, the PSNR that the corpus
JPEG's own quality-90 encoding has against the fully decoded, resized image.
Kinds: rendered people (smooth, like a clean photo), the same with photo grain, and fine stripes (the
worst case for a DCT-domain reduction), at 3x, 4x and 8x the corpus size.

    python benchmarks/decode_draft.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shards.images import decode_image  # noqa: E402
from shards.sample import IMAGE_SIZE, encode_image  # noqa: E402
from spac.render.identity import random_identity  # noqa: E402
from spac.render.person import render_person  # noqa: E402

SCALES = (3, 4, 8)  # source size / corpus size, per dimension


def _jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def sources(scale: int, seed: int = 0) -> dict[str, bytes]:
    import random

    height, width = IMAGE_SIZE
    size = (width * scale, height * scale)
    person, _ = render_person(random_identity(random.Random(seed)), seed, size)
    rng = np.random.default_rng(seed)
    grain = np.asarray(person, dtype=np.float32) + rng.normal(0, 12, (size[1], size[0], 3))
    x = np.arange(size[0])[None, :, None]
    stripes = np.broadcast_to(((x // 2) % 2) * 255, (size[1], size[0], 3))  # 2-pixel stripes
    return {
        "rendered": _jpeg(person),
        "rendered+grain": _jpeg(Image.fromarray(grain.clip(0, 255).astype(np.uint8))),
        "stripes": _jpeg(Image.fromarray(stripes.astype(np.uint8))),
    }


def corpus_jpeg(data: bytes, draft: bool) -> bytes:
    return encode_image(decode_image(data, min_size=IMAGE_SIZE if draft else None))


def psnr(a: bytes, b: bytes) -> float:
    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def mean_abs(a: bytes, b: bytes) -> float:
    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.float64)
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.float64)
    return float(np.mean(np.abs(x - y)))


def reencoding_psnr(data: bytes) -> float:
    """The yardstick: what the corpus JPEG's own quality-90 encoding costs a fully decoded image."""
    height, width = IMAGE_SIZE
    resized = decode_image(data).resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    resized.save(buffer, format="PNG")
    return psnr(buffer.getvalue(), corpus_jpeg(data, False))


def timed(data: bytes, draft: bool, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        corpus_jpeg(data, draft)
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per image (default: 7)")
    args = parser.parse_args()
    columns = ("full ms", "draft ms", "speed-up", "PSNR dB", "mean |d|")
    print(f"{'source':>16} {'size':>10} " + " ".join(f"{c:>8}" for c in columns) + f" {'q90 dB':>7}")
    for scale in SCALES:
        for kind, data in sources(scale).items():
            repeat = max(1, 16 // scale)
            full_times, draft_times = [], []
            for _ in range(args.rounds):  # alternate, so drift of the machine hits both alike
                full_times.append(timed(data, False, repeat))
                draft_times.append(timed(data, True, repeat))
            full, draft = statistics.median(full_times), statistics.median(draft_times)
            a, b = corpus_jpeg(data, False), corpus_jpeg(data, True)
            size = Image.open(io.BytesIO(data)).size
            print(
                f"{kind:>16} {size[0]:>4}x{size[1]:<5} {full * 1e3:8.2f} {draft * 1e3:8.2f} {full / draft:7.2f}x "
                f"{psnr(a, b):8.2f} {mean_abs(a, b):8.2f} {reencoding_psnr(data):7.2f}"
            )


if __name__ == "__main__":
    main()
