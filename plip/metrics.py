"""Text-to-image retrieval metrics: CMC Rank-k, mAP (standard and the released trapezoid variant), mINP.

Every query (a caption embedding) is compared with every gallery image embedding by cosine similarity of
L2-normalised vectors; the gallery is ranked per query and the positions of the images sharing the
query's identity ("hits") give the metrics. For one query with m hits at 1-based ranks r_1 < ... < r_m:

- CMC Rank-k: 1 when r_1 <= k.
- standard AP: the mean of the precision at each hit, (1/m) * sum_i i / r_i.
- released AP (``map_released``): the rule of the PLIP reference evaluation, the area under the
  precision-recall curve by the trapezoid rule; each hit adds recall 1/m and the trapezoid spans the
  precision just before the hit, (i-1)/(r_i-1) (1.0 when r_i == 1), and the precision at the hit, i/r_i:
  (1/m) * sum_i ((i-1)/(r_i-1) + i/r_i) / 2. It is never above the standard AP.
- INP (inverse negative penalty): m / r_m, how deep the hardest hit sits.

All are averaged over queries and given in percent. Ties are broken deterministically: a stable sort by
descending score, so equal scores keep gallery order (the lower gallery index ranks first). A query whose
identity has no image in the gallery has no defined AP; it is left out of every metric and counted in
``queries_without_match``. Similarities are computed for chunks of queries so large sets fit in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from common.errors import InputError

DEFAULT_RANKS = (1, 5, 10)
IdList = Sequence[int] | torch.Tensor


@dataclass(frozen=True)
class RetrievalMetrics:
    """Metric values in percent; ``queries`` counts evaluated queries, ``queries_without_match`` the skipped."""

    rank: dict[int, float]
    map: float
    map_released: float
    minp: float
    queries: int
    queries_without_match: int

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f"R@{k}": v for k, v in self.rank.items()}
        out.update(
            mAP=self.map,
            mAP_released=self.map_released,
            mINP=self.minp,
            queries=self.queries,
            queries_without_match=self.queries_without_match,
        )
        return out


@dataclass
class _Totals:
    ranks: tuple[int, ...]
    hits_at: dict[int, int] = field(default_factory=dict)
    ap: float = 0.0
    ap_released: float = 0.0
    inp: float = 0.0
    evaluated: int = 0
    skipped: int = 0

    def add_chunk(self, similarity: torch.Tensor, query_ids: torch.Tensor, gallery_ids: torch.Tensor) -> None:
        if not torch.isfinite(similarity).all():
            raise ValueError("similarity scores must be finite (got NaN or inf)")
        order = torch.sort(-similarity, dim=1, stable=True).indices
        matches = gallery_ids[order] == query_ids[:, None]
        relevant = matches.sum(dim=1)
        has_match = relevant > 0
        self.skipped += int((~has_match).sum())
        hit = matches[has_match].double()
        relevant = relevant[has_match].double()
        if hit.shape[0] == 0:
            return
        positions = torch.arange(1, hit.shape[1] + 1, dtype=torch.float64, device=hit.device)
        hits_so_far = hit.cumsum(dim=1)
        precision = hits_so_far / positions
        before = torch.where(
            positions > 1, (hits_so_far - 1) / (positions - 1).clamp(min=1), torch.ones_like(precision)
        )
        first_hit = hit.argmax(dim=1) + 1
        last_hit = hit.shape[1] - hit.flip(1).argmax(dim=1)
        self.ap += float(((hit * precision).sum(dim=1) / relevant).sum())
        self.ap_released += float(((hit * (before + precision) / 2).sum(dim=1) / relevant).sum())
        self.inp += float((relevant / last_hit).sum())
        for k in self.ranks:
            self.hits_at[k] = self.hits_at.get(k, 0) + int((first_hit <= k).sum())
        self.evaluated += hit.shape[0]

    def result(self) -> RetrievalMetrics:
        if self.evaluated == 0:
            raise InputError(f"none of the {self.skipped} queries has an identity present in the gallery")
        pct = 100.0 / self.evaluated
        return RetrievalMetrics(
            rank={k: self.hits_at[k] * pct for k in self.ranks},
            map=self.ap * pct,
            map_released=self.ap_released * pct,
            minp=self.inp * pct,
            queries=self.evaluated,
            queries_without_match=self.skipped,
        )


def _ids(ids: IdList, name: str, device: torch.device) -> torch.Tensor:
    tensor = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty")
    return tensor.to(device)


def _check_ranks(ranks: Sequence[int]) -> tuple[int, ...]:
    if not ranks or any(int(k) < 1 for k in ranks):
        raise ValueError(f"ranks must be positive integers, got {list(ranks)}")
    return tuple(int(k) for k in ranks)


def metrics_from_similarity(
    similarity: torch.Tensor, query_ids: IdList, gallery_ids: IdList, ranks: Sequence[int] = DEFAULT_RANKS
) -> RetrievalMetrics:
    """Metrics for a ready [queries, gallery] score matrix (higher = more similar)."""
    if similarity.dim() != 2:
        raise ValueError(f"similarity must be a [queries, gallery] matrix, got shape {tuple(similarity.shape)}")
    qids = _ids(query_ids, "query_ids", similarity.device)
    gids = _ids(gallery_ids, "gallery_ids", similarity.device)
    if similarity.shape != (len(qids), len(gids)):
        raise ValueError(
            f"similarity shape {tuple(similarity.shape)} does not match {len(qids)} query ids x {len(gids)} gallery ids"
        )
    totals = _Totals(_check_ranks(ranks))
    totals.add_chunk(similarity, qids, gids)
    return totals.result()


def retrieval_metrics(
    query_embeddings: torch.Tensor,
    query_ids: IdList,
    gallery_embeddings: torch.Tensor,
    gallery_ids: IdList,
    ranks: Sequence[int] = DEFAULT_RANKS,
    chunk_size: int = 512,
) -> RetrievalMetrics:
    """Cosine-similarity retrieval metrics, scoring ``chunk_size`` queries at a time against the whole gallery."""
    if query_embeddings.dim() != 2 or gallery_embeddings.dim() != 2:
        raise ValueError("query and gallery embeddings must be 2-D [count, dim] tensors")
    if query_embeddings.shape[1] != gallery_embeddings.shape[1]:
        raise ValueError(
            f"embedding sizes differ: queries {query_embeddings.shape[1]}, gallery {gallery_embeddings.shape[1]}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    device = gallery_embeddings.device
    qids = _ids(query_ids, "query_ids", device)
    gids = _ids(gallery_ids, "gallery_ids", device)
    if len(qids) != len(query_embeddings) or len(gids) != len(gallery_embeddings):
        raise ValueError(
            f"{len(query_embeddings)} query / {len(gallery_embeddings)} gallery embeddings but "
            f"{len(qids)} query / {len(gids)} gallery ids"
        )
    queries = F.normalize(query_embeddings.float().to(device), dim=1)
    gallery = F.normalize(gallery_embeddings.float(), dim=1)
    totals = _Totals(_check_ranks(ranks))
    for start in range(0, len(queries), chunk_size):
        stop = start + chunk_size
        totals.add_chunk(queries[start:stop] @ gallery.T, qids[start:stop], gids)
    return totals.result()
