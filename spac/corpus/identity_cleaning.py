"""Identity cleaning: drop the images of an identity that show someone else, merge identities of one person.

LUPerson-NL identities come from tracklets and are noisy in two ways: a tracklet can jump to another
person (foreign images inside an identity) and one person can be split over several tracklets (several
identities). This module holds the method as pure numpy/torch functions over appearance embeddings (the
predictor's pooled backbone features, ``Prediction.embedding``); ``pipelines.synthesis.identity_cleaning`` runs it
as a Beam stage between inference and the identity filters.

- **Embeddings** travel as float16 little-endian bytes (:func:`embedding_bytes`). Before any cosine is
  taken, :func:`prepare_embeddings` L2-normalises them and removes their *common mode*, the component
  along the all-ones direction: pooled ReLU features are all non-negative, so any two people have a
  cosine of 0.7-0.9 and every random hyperplane puts them on the same side. Removing the all-ones
  component is data-free (no corpus mean, so nothing global) and did nearly what centring on the true
  mean does on rendered people (outlier AUC 0.980 raw, 0.992 common mode removed, 0.996 mean-centred;
  median cosine between different people's centres 0.80 raw, 0.05 after).
- **Outliers** (:func:`split_outliers`): an identity's centre is the renormalised mean of its
  embeddings; an image whose cosine to the centre is below ``outlier_similarity`` is dropped. The centre
  is re-estimated without the dropped images (``outlier_rounds`` times) so a few foreign images do not
  drag it; identities with fewer than ``min_images_for_outliers`` images are not judged.
- **Merges**: each kept centre gets ``lsh_tables`` random-hyperplane signatures of ``lsh_bits`` bits
  (:func:`lsh_signatures`); centres sharing a bucket are scored exactly (:func:`score_bucket`); pairs at
  or above ``merge_similarity`` are edges, and :func:`resolve_merges` maps every identity of a connected
  component to its smallest name. :func:`nearest_centres` is the exact blocked kNN used as reference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from common.errors import InputError

EMBEDDING_DTYPE = np.dtype("<f2")  # what travels between steps: float16, little-endian
_EPSILON = 1e-12
# A pair scored in a block within this of the threshold is re-scored on its own in float64, so whether two
# centres merge never depends on which other centres shared their bucket (blocked float32 kernels differ
# in the last bits with the block's shape).
_RESCORE_MARGIN = 1e-3
_SMALL_BUCKET = 256


@dataclass(frozen=True)
class CleaningConfig:
    """Thresholds of identity cleaning.

    The paper gives no cleaning step and no thresholds (it filters identities only by the gender vote,
    the minimum of 5 and the cap of 20), so the defaults are measured: ``benchmarks/identity_cleaning.py
    calibrate`` on 80 rendered people x 8 images embedded by the bundled demo predictor, common mode
    removed, each identity holding 2 foreign images. A person's own images lie at cosine 0.56 (5th
    percentile) / 0.84 (median) to the centre, foreign images at 0.22 (median) / 0.50 (95th); at
    ``outlier_similarity = 0.45`` the drops had precision 0.92 and recall 0.92 (0.50: 0.88 / 0.94).
    The two halves of a split identity have centres at cosine 0.74 (5th percentile) / 0.90 (median),
    the closest centre of another person 0.57 (median) / 0.75 (99th); at ``merge_similarity = 0.80``
    84 % of the split identities were merged and none of the 6,320 pairs of different people (0.75:
    94 %, 3 false pairs). A false merge corrupts identity labels while a missed one leaves the corpus as
    it was, so the merge threshold leans to precision. These cosines are properties of the embedding
    model: re-measure them for another predictor (the job's ``--outlier_similarity`` /
    ``--merge_similarity``).

    - ``outlier_similarity``: drop an image whose cosine to its identity's centre is below this.
    - ``merge_similarity``: merge two identities whose centres' cosine is at or above this.
    - ``min_images_for_outliers``: only judge identities with at least this many images (a centre of two
      images says nothing about which one is foreign).
    - ``outlier_rounds``: how many times the centre is re-estimated without the dropped images (0 = one
      pass against the centre of all images).
    - ``lsh_tables``, ``lsh_bits``: random-hyperplane LSH; more tables raise the chance that two near
      centres share a bucket, more bits shrink the buckets. With ``b`` bits and ``L`` tables a pair at
      angle ``t`` shares a bucket with probability ``1 - (1 - (1 - t/pi)^b)^L``: at 16 x 8 bits 0.94 for
      cosine 0.80, 0.98 for 0.85, 0.06 for two unrelated centres (cosine ~0; a bucket holds ~1/256 of
      the centres). Buckets shrink as 2^-b: raise ``lsh_bits`` (and ``lsh_tables`` to keep recall)
      as the corpus grows.
    - ``remove_common_mode``: remove the all-ones component before cosines (see the module docstring).
    - ``seed``: the hyperplanes' seed; the same seed gives the same signatures on every worker.
    """

    outlier_similarity: float = 0.45
    merge_similarity: float = 0.8
    min_images_for_outliers: int = 4
    outlier_rounds: int = 2
    lsh_tables: int = 16
    lsh_bits: int = 8
    remove_common_mode: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("outlier_similarity", "merge_similarity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
                raise InputError(f"{name} must be a cosine between -1 and 1, got {value!r}")
        limits = {
            "min_images_for_outliers": (1, None),
            "outlier_rounds": (0, 10),
            "lsh_tables": (1, 256),
            "lsh_bits": (1, 62),
            "seed": (0, None),
        }
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < low
                or (high is not None and value > high)
            ):
                bound = f"from {low} to {high}" if high is not None else f"at least {low}"
                raise InputError(f"{name} must be an integer {bound}, got {value!r}")
        if not isinstance(self.remove_common_mode, bool):
            raise InputError(f"remove_common_mode must be true or false, got {self.remove_common_mode!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def embedding_bytes(vector: Sequence[float] | np.ndarray | torch.Tensor) -> bytes:
    """A 1-D embedding as float16 little-endian bytes (what a record's ``embedding`` holds)."""
    if isinstance(vector, torch.Tensor):
        vector = vector.detach().cpu().float().numpy()
    array = np.asarray(vector, dtype=np.float32)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"an embedding must be a non-empty 1-D vector, got shape {list(array.shape)}")
    if not np.all(np.isfinite(array)):
        raise ValueError("an embedding must be finite")
    return array.astype(EMBEDDING_DTYPE).tobytes()


def embedding_from_bytes(data: bytes, dim: int | None = None) -> np.ndarray:
    """float16 little-endian bytes -> float32 vector; ``dim`` checks the length when given."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"an embedding must be bytes, got {type(data).__name__}")
    if len(data) == 0 or len(data) % EMBEDDING_DTYPE.itemsize:
        raise InputError(f"an embedding must be a non-empty float16 byte string, got {len(data)} bytes")
    vector = np.frombuffer(bytes(data), dtype=EMBEDDING_DTYPE).astype(np.float32)
    if dim is not None and vector.size != dim:
        raise InputError(f"expected a {dim}-dimensional embedding, got {vector.size}")
    if not np.all(np.isfinite(vector)):
        raise InputError("an embedding must be finite")
    return vector


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.maximum(norms, _EPSILON)


def prepare_embeddings(vectors: np.ndarray | Sequence[np.ndarray], remove_common_mode: bool = True) -> np.ndarray:
    """``[N, C]`` float32 rows: L2-normalised, with the all-ones component removed (then renormalised)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"expected embeddings of shape [N, C], got {list(matrix.shape)}")
    matrix = _normalise(matrix)
    if remove_common_mode:
        ones = np.full(matrix.shape[1], 1.0 / math.sqrt(matrix.shape[1]), dtype=np.float32)
        matrix = _normalise(matrix - np.outer(matrix @ ones, ones))
    return matrix.astype(np.float32)


def identity_centre(embeddings: np.ndarray) -> np.ndarray:
    """The renormalised mean of L2-normalised rows ``[N, C]`` (pass :func:`prepare_embeddings` output)."""
    matrix = np.asarray(embeddings, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"an identity centre needs embeddings of shape [N>=1, C], got {list(matrix.shape)}")
    return _normalise(_normalise(matrix).astype(np.float64).mean(axis=0)).astype(np.float32)


@dataclass(frozen=True)
class OutlierSplit:
    """One identity's verdict: row indices kept and dropped (ascending), each row's cosine to the final
    centre, and that centre (the mean of the kept rows)."""

    kept: list[int]
    dropped: list[int]
    similarities: np.ndarray
    centre: np.ndarray


def split_outliers(embeddings: np.ndarray, config: CleaningConfig) -> OutlierSplit:
    """Split one identity's prepared embeddings ``[N, C]`` (rows in a fixed order, e.g. by key).

    The centre starts as the mean of all rows and is re-estimated from the rows at or above
    ``outlier_similarity`` up to ``outlier_rounds`` times, but only while at least half the rows stay
    (the tracklet's person is assumed to be the majority; below that the first centre is kept). An
    identity smaller than ``min_images_for_outliers`` keeps every row.
    """
    matrix = np.asarray(embeddings, dtype=np.float32)
    centre = identity_centre(matrix)
    similarities = matrix @ centre
    count = matrix.shape[0]
    if count < config.min_images_for_outliers:
        return OutlierSplit(list(range(count)), [], similarities, centre)
    for _ in range(config.outlier_rounds):
        keep = similarities >= config.outlier_similarity
        if keep.all() or 2 * int(keep.sum()) < count:
            break
        new_centre = identity_centre(matrix[keep])
        if np.array_equal(new_centre, centre):
            break
        centre, similarities = new_centre, matrix @ new_centre
    keep = similarities >= config.outlier_similarity
    if 2 * int(keep.sum()) < count:  # no majority agrees on a person: judge nothing rather than guess
        return OutlierSplit(list(range(count)), [], similarities, identity_centre(matrix))
    kept = [int(i) for i in np.flatnonzero(keep)]
    dropped = [int(i) for i in np.flatnonzero(~keep)]
    final_centre = identity_centre(matrix[keep]) if dropped else centre
    return OutlierSplit(kept, dropped, similarities, final_centre)


def lsh_planes(dim: int, config: CleaningConfig) -> np.ndarray:
    """``[lsh_tables * lsh_bits, dim]`` Gaussian hyperplane normals, fixed by ``config.seed`` and ``dim``."""
    if dim < 1:
        raise ValueError(f"embedding dimension must be at least 1, got {dim}")
    rng = np.random.default_rng([config.seed, dim, config.lsh_tables, config.lsh_bits])
    return rng.standard_normal((config.lsh_tables * config.lsh_bits, dim)).astype(np.float32)


def lsh_signatures(centre: np.ndarray, planes: np.ndarray, config: CleaningConfig) -> list[tuple[int, int]]:
    """``(table, signature)`` for each table: the sign bits of the centre against that table's planes."""
    bits = (np.asarray(planes, dtype=np.float64) @ np.asarray(centre, dtype=np.float64)) >= 0.0  # no copy if float64
    weights = 1 << np.arange(config.lsh_bits, dtype=np.int64)
    codes = bits.reshape(config.lsh_tables, config.lsh_bits).astype(np.int64) @ weights
    return [(table, int(code)) for table, code in enumerate(codes)]


def pair_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of two unit centres in float64: the one score a merge decision uses."""
    return float(np.dot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))


def score_bucket(
    names: Sequence[str], centres: np.ndarray, threshold: float, block: int = 1024
) -> list[tuple[str, str, float]]:
    """Pairs ``(a, b, cosine)`` with ``a < b`` among one bucket's centres whose cosine is >= ``threshold``.

    Candidates come from blocked float32 matrix products over the upper triangle; each candidate near
    or above the threshold is re-scored alone (:func:`pair_similarity`), so the answer for a pair is the
    same in every bucket. Sorted by (a, b).
    """
    if len(names) != len(centres):
        raise ValueError(f"{len(names)} names for {len(centres)} centres")
    if len(set(names)) != len(names):
        raise ValueError("a bucket must not hold one identity twice")
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    count = len(names)
    if count < 2:
        return []
    centres = np.ascontiguousarray(centres, dtype=np.float32)
    if count <= min(block, _SMALL_BUCKET):  # most buckets: one numpy product beats torch's per-call overhead
        blocks = [(0, np.argwhere(np.triu(centres @ centres.T >= threshold - _RESCORE_MARGIN, k=1)))]
    else:
        matrix = torch.from_numpy(centres)
        blocks = []
        for start in range(0, count, block):
            rows = matrix[start : start + block]
            scores = rows @ matrix[start:].T  # only columns at or after the block: the upper triangle
            candidate = scores >= threshold - _RESCORE_MARGIN
            candidate &= torch.arange(start, start + rows.shape[0])[:, None] < torch.arange(start, count)[None, :]
            blocks.append((start, torch.nonzero(candidate).numpy()))
    pairs = []
    for start, candidates in blocks:
        for i, j in candidates.tolist():
            left, right = start + i, start + j
            score = pair_similarity(centres[left], centres[right])
            if score >= threshold:
                a, b = sorted((names[left], names[right]))
                pairs.append((a, b, score))
    return sorted(pairs)


def resolve_merges(pairs: Iterable[tuple[str, str] | tuple[str, str, float]]) -> dict[str, str]:
    """Identity -> canonical identity for every identity named in ``pairs`` (edges of the merge graph):
    the smallest name of its connected component (union-find), whatever the order of the pairs."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        root = name
        while parent[root] != root:
            root = parent[root]
        while parent[name] != root:  # path compression
            parent[name], name = root, parent[name]
        return root

    for pair in pairs:
        a, b = pair[0], pair[1]
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            small, large = sorted((root_a, root_b))
            parent[large] = small  # the root is always the smallest name seen in its component
    return {name: find(name) for name in sorted(parent)}


def nearest_centres(centres: np.ndarray | torch.Tensor, k: int, block: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN by cosine among unit centres ``[N, C]``, each row's own index excluded:
    ``(similarities [N, k'], indices [N, k'])`` best first, ``k' = min(k, N - 1)``, by blocked torch
    matrix products (memory ``block x N``)."""
    matrix = torch.as_tensor(
        np.asarray(centres, dtype=np.float32) if not isinstance(centres, torch.Tensor) else centres.float()
    )
    if matrix.ndim != 2:
        raise ValueError(f"expected centres of shape [N, C], got {list(matrix.shape)}")
    if k < 1 or block < 1:
        raise ValueError(f"k and block must be at least 1, got k={k}, block={block}")
    count = matrix.shape[0]
    width = min(k, count - 1)
    similarities = np.zeros((count, max(width, 0)), dtype=np.float32)
    indices = np.zeros((count, max(width, 0)), dtype=np.int64)
    if width <= 0:
        return similarities, indices
    for start in range(0, count, block):
        rows = matrix[start : start + block]
        scores = rows @ matrix.T
        own = torch.arange(start, start + rows.shape[0])
        scores[torch.arange(rows.shape[0]), own] = -math.inf
        top = torch.topk(scores, width, dim=1)
        similarities[start : start + rows.shape[0]] = top.values.numpy()
        indices[start : start + rows.shape[0]] = top.indices.numpy()
    return similarities, indices
