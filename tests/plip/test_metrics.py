import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plip.metrics import metrics_from_similarity, retrieval_metrics

# Gallery of four images: identities 1, 1, 2, 3.
GALLERY_IDS = [1, 1, 2, 3]
# Three queries worked out by hand (ranks are 1-based positions in the sorted gallery):
#   q0 (id 1): order g0 g2 g3 g1 -> hits at 1, 4: AP (1/1 + 2/4)/2 = 0.75; released ((1+1)/2 + (1/3+1/2)/2)/2 = 17/24;
#              INP 2/4
#   q1 (id 2): order g0 g1 g2 g3 -> hit at 3: AP 1/3; released (0/2 + 1/3)/2 = 1/6; INP 1/3
#   q2 (id 3): order g1 g3 g0 g2 -> hit at 2: AP 1/2; released (0/1 + 1/2)/2 = 1/4; INP 1/2
HAND_SCORES = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.8, 0.7, 0.6, 0.1], [0.2, 0.9, 0.1, 0.5]])
HAND_QUERY_IDS = [1, 2, 3]


def test_perfect_ranking_scores_100_everywhere():
    ids = [0, 0, 1, 2, 2, 2]
    embeddings = torch.nn.functional.one_hot(torch.tensor(ids), 3).float()
    result = retrieval_metrics(embeddings, ids, embeddings, ids)
    assert result.rank == {1: 100.0, 5: 100.0, 10: 100.0}
    assert result.map == pytest.approx(100.0)
    assert result.map_released == pytest.approx(100.0)
    assert result.minp == pytest.approx(100.0)
    assert result.queries == 6 and result.queries_without_match == 0


def test_three_queries_by_hand():
    result = metrics_from_similarity(HAND_SCORES, HAND_QUERY_IDS, GALLERY_IDS, ranks=(1, 2, 5))
    assert result.rank[1] == pytest.approx(100 / 3)
    assert result.rank[2] == pytest.approx(200 / 3)
    assert result.rank[5] == pytest.approx(100.0)
    assert result.map == pytest.approx(100 * (0.75 + 1 / 3 + 0.5) / 3)
    assert result.minp == pytest.approx(100 * (0.5 + 1 / 3 + 0.5) / 3)


def test_released_map_is_the_trapezoid_rule_and_lower_than_standard_by_hand():
    result = metrics_from_similarity(HAND_SCORES, HAND_QUERY_IDS, GALLERY_IDS)
    assert result.map_released == pytest.approx(100 * (17 / 24 + 1 / 6 + 1 / 4) / 3)
    assert result.map_released < result.map


def test_ties_keep_gallery_order():
    # All scores equal: the ranking is the gallery order, so id 1's hits sit at ranks 2 and 3.
    scores = torch.zeros(2, 3)
    result = metrics_from_similarity(scores, [1, 2], [2, 1, 1], ranks=(1,))
    assert result.rank[1] == pytest.approx(50.0)  # only the id-2 query finds its image first
    assert result.map == pytest.approx(100 * ((1 / 2 + 2 / 3) / 2 + 1.0) / 2)
    # Reordering the gallery changes which tied image comes first.
    swapped = metrics_from_similarity(scores, [1, 2], [1, 1, 2], ranks=(1,))
    assert swapped.rank[1] == pytest.approx(50.0)
    assert swapped.map == pytest.approx(100 * (1.0 + 1 / 3) / 2)


def test_query_with_absent_identity_is_left_out_and_counted():
    with_absent = torch.cat([HAND_SCORES, torch.tensor([[0.4, 0.3, 0.2, 0.1]])])
    result = metrics_from_similarity(with_absent, HAND_QUERY_IDS + [99], GALLERY_IDS)
    baseline = metrics_from_similarity(HAND_SCORES, HAND_QUERY_IDS, GALLERY_IDS)
    assert result.queries_without_match == 1 and result.queries == 3
    assert result.as_dict() | {"queries_without_match": 0} == baseline.as_dict()


def test_no_query_identity_in_gallery_is_an_error():
    with pytest.raises(ValueError, match="none of the 2 queries"):
        metrics_from_similarity(torch.zeros(2, 2), [7, 8], [1, 2])


def _slow_reference(scores: torch.Tensor, qids: list[int], gids: list[int]) -> tuple[float, float]:
    """Per-query loop written independently of the vectorised code: (standard mAP, released mAP) in percent."""
    ap_sum = released_sum = 0.0
    for row, qid in zip(scores.tolist(), qids):
        order = sorted(range(len(gids)), key=lambda j: (-row[j], j))
        ranks = [pos + 1 for pos, j in enumerate(order) if gids[j] == qid]
        ap_sum += sum(i / r for i, r in enumerate(ranks, 1)) / len(ranks)
        released_sum += sum(
            ((i - 1) / (r - 1) if r > 1 else 1.0) / 2 + i / r / 2 for i, r in enumerate(ranks, 1)
        ) / len(ranks)
    return 100 * ap_sum / len(qids), 100 * released_sum / len(qids)


def test_random_case_chunked_matches_reference_and_released_is_lower():
    # The size of REFERENCE.md's example: 80 queries, 60 gallery images, 20 identities.
    generator = torch.Generator().manual_seed(0)
    gallery_ids = [i % 20 for i in range(60)]
    query_ids = [i % 20 for i in range(80)]
    queries = torch.randn(80, 16, generator=generator)
    gallery = torch.randn(60, 16, generator=generator)
    chunked = retrieval_metrics(queries, query_ids, gallery * 3.0, gallery_ids, chunk_size=7)
    whole = retrieval_metrics(queries, query_ids, gallery, gallery_ids, chunk_size=1000)
    assert chunked.as_dict() == pytest.approx(whole.as_dict())
    scores = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(gallery, dim=1).T
    standard, released = _slow_reference(scores, query_ids, gallery_ids)
    assert whole.map == pytest.approx(standard)
    assert whole.map_released == pytest.approx(released)
    assert whole.map_released < whole.map


@pytest.mark.parametrize(
    "scores, qids, gids, message",
    [
        (torch.tensor([[float("nan"), 0.0]]), [1], [1, 2], "finite"),
        (torch.zeros(2, 3), [1], [1, 2, 3], "does not match"),
        (torch.zeros(1, 0), [1], [], "gallery_ids is empty"),
    ],
)
def test_bad_input_raises_precise_errors(scores, qids, gids, message):
    with pytest.raises(ValueError, match=message):
        metrics_from_similarity(scores, qids, gids)


def test_embedding_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match="embedding sizes differ"):
        retrieval_metrics(torch.zeros(2, 4), [1, 2], torch.zeros(3, 5), [1, 2, 3])


# --- properties over random cases (hypothesis) ------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def retrieval_cases(draw, ties: bool = True):
    """(scores [Q, G], query ids, gallery ids): every query's identity is in the gallery; with ``ties`` the
    scores come from three values (many ties), without them each row is a permutation (no ties)."""
    gallery_size = draw(st.integers(1, 12))
    gallery_ids = draw(st.lists(st.integers(0, 3), min_size=gallery_size, max_size=gallery_size))
    query_ids = draw(st.lists(st.sampled_from(gallery_ids), min_size=1, max_size=6))
    if ties:
        row = st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=gallery_size, max_size=gallery_size)
    else:
        row = st.permutations([float(v) for v in range(gallery_size)])
    scores = [draw(row) for _ in query_ids]
    return torch.tensor(scores, dtype=torch.float32), query_ids, gallery_ids


def _brute_force(scores: torch.Tensor, qids: list[int], gids: list[int]) -> dict[str, float]:
    """Every metric from its definition, query by query: rank the gallery (ties by gallery order), then count."""
    totals = {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0, "mAP": 0.0, "mAP_released": 0.0, "mINP": 0.0}
    for row, qid in zip(scores.tolist(), qids):
        order = sorted(range(len(gids)), key=lambda j: (-row[j], j))
        hits = [rank for rank, j in enumerate(order, 1) if gids[j] == qid]
        for k in (1, 5, 10):
            totals[f"R@{k}"] += hits[0] <= k
        totals["mAP"] += sum(sum(h <= r for h in hits) / r for r in hits) / len(hits)
        totals["mAP_released"] += sum(
            ((i - 1) / (r - 1) if r > 1 else 1.0) / 2 + i / r / 2 for i, r in enumerate(hits, 1)
        ) / len(hits)
        totals["mINP"] += len(hits) / hits[-1]
    return {name: 100 * value / len(qids) for name, value in totals.items()}


def _values(result) -> dict[str, float]:
    return {k: v for k, v in result.as_dict().items() if k not in ("queries", "queries_without_match")}


@PROPERTY_SETTINGS
@given(retrieval_cases())
def test_metrics_are_ordered_percentages(case):
    scores, qids, gids = case
    m = metrics_from_similarity(scores, qids, gids).as_dict()
    assert 0 <= m["R@1"] <= m["R@5"] <= m["R@10"] <= 100
    assert 0 < m["mAP"] <= 100 + 1e-9 and 0 < m["mINP"] <= 100 + 1e-9
    assert m["mAP_released"] <= m["mAP"] + 1e-9
    # AP >= INP / (the query's hits), so mAP >= mINP / (the most hits any query has).
    most_hits = max(gids.count(q) for q in qids)
    assert m["mAP"] >= m["mINP"] / most_hits - 1e-9
    if most_hits == 1:  # one relevant image per query: AP and INP are both 1 / its rank
        assert m["mINP"] == pytest.approx(m["mAP"])


def test_minp_can_exceed_map():
    # Hits at ranks 5 and 6: AP = (1/5 + 2/6) / 2 = 0.267 but INP = 2/6 = 0.333, so "mINP <= mAP" is no invariant.
    result = metrics_from_similarity(torch.tensor([[6.0, 5, 4, 3, 2, 1]]), [1], [0, 0, 0, 0, 1, 1])
    assert result.map == pytest.approx(100 * (1 / 5 + 2 / 6) / 2)
    assert result.minp == pytest.approx(100 * 2 / 6) and result.minp > result.map


@PROPERTY_SETTINGS
@given(retrieval_cases(), st.data())
def test_a_perfect_ranking_gives_100_everywhere(case, data):
    _, qids, gids = case
    # Every hit above every other image, in any order among themselves.
    noise = torch.tensor(
        data.draw(st.lists(st.floats(0, 0.99), min_size=len(qids) * len(gids), max_size=len(qids) * len(gids)))
    ).view(len(qids), len(gids))
    scores = (torch.tensor(gids)[None, :] == torch.tensor(qids)[:, None]).float() + noise
    assert _values(metrics_from_similarity(scores, qids, gids)) == pytest.approx(
        {"R@1": 100, "R@5": 100, "R@10": 100, "mAP": 100, "mAP_released": 100, "mINP": 100}
    )


@PROPERTY_SETTINGS
@given(retrieval_cases(ties=False), st.data())
def test_permuting_the_gallery_with_its_labels_changes_no_metric(case, data):
    scores, qids, gids = case
    permutation = data.draw(st.permutations(range(len(gids))))
    permuted = metrics_from_similarity(scores[:, permutation], qids, [gids[j] for j in permutation])
    assert permuted.as_dict() == pytest.approx(metrics_from_similarity(scores, qids, gids).as_dict())


@PROPERTY_SETTINGS
@given(retrieval_cases())
def test_every_metric_equals_a_brute_force_computation(case):
    scores, qids, gids = case
    assert _values(metrics_from_similarity(scores, qids, gids)) == pytest.approx(_brute_force(scores, qids, gids))


@PROPERTY_SETTINGS
@given(retrieval_cases(), st.lists(st.integers(100, 103), min_size=1, max_size=4), st.data())
def test_queries_whose_identity_is_absent_are_excluded_and_counted(case, absent_ids, data):
    scores, qids, gids = case
    rows = torch.tensor(
        data.draw(
            st.lists(
                st.lists(st.floats(-1, 1), min_size=len(gids), max_size=len(gids)),
                min_size=len(absent_ids),
                max_size=len(absent_ids),
            )
        )
    )
    # The absent queries are interleaved with the others: where they sit changes nothing.
    positions = sorted(
        data.draw(st.lists(st.integers(0, len(qids)), min_size=len(absent_ids), max_size=len(absent_ids)))
    )
    all_scores, all_ids = list(scores), list(qids)
    for offset, (position, row, qid) in enumerate(zip(positions, rows, absent_ids)):
        all_scores.insert(position + offset, row)
        all_ids.insert(position + offset, qid)
    mixed = metrics_from_similarity(torch.stack(all_scores), all_ids, gids)
    alone = metrics_from_similarity(scores, qids, gids)
    assert (mixed.queries, mixed.queries_without_match) == (len(qids), len(absent_ids))
    assert _values(mixed) == pytest.approx(_values(alone))
