import itertools
import random

import numpy as np
import pytest
import torch

from spac.attributes import load_schema
from spac.corpus.identity_cleaning import (
    CleaningConfig,
    embedding_bytes,
    embedding_from_bytes,
    identity_centre,
    lsh_planes,
    lsh_signatures,
    nearest_centres,
    prepare_embeddings,
    resolve_merges,
    score_bucket,
    split_outliers,
)
from spac.predictor.model import PredictorConfig, build_predictor


def _unit(matrix):
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def _cluster(rng, centre, count, cosine):
    """``count`` unit vectors around unit ``centre`` at about ``cosine`` to it."""
    noise = _unit(rng.standard_normal((count, centre.size)))
    noise -= np.outer(noise @ centre, centre)
    noise = _unit(noise)
    return _unit(cosine * centre + np.sqrt(1 - cosine**2) * noise).astype(np.float32)


def test_embedding_bytes_round_trip_as_float16_little_endian():
    vector = np.array([0.5, -0.25, 1.0, 0.0], dtype=np.float32)
    data = embedding_bytes(vector)
    assert data == np.array(vector, dtype="<f2").tobytes() and len(data) == 8
    assert np.array_equal(embedding_from_bytes(data, dim=4), vector)
    assert embedding_bytes(torch.tensor(vector)) == data
    with pytest.raises(ValueError, match="5-dimensional embedding, got 4"):
        embedding_from_bytes(data, dim=4 + 1)
    for bad in (b"", b"abc", "text"):
        with pytest.raises(ValueError):
            embedding_from_bytes(bad)
    with pytest.raises(ValueError, match="finite"):
        embedding_bytes([np.nan, 1.0])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"outlier_similarity": 1.5}, "outlier_similarity"),
        ({"merge_similarity": "0.8"}, "merge_similarity"),
        ({"min_images_for_outliers": 0}, "min_images_for_outliers"),
        ({"lsh_tables": 0}, "lsh_tables"),
        ({"lsh_bits": 63}, "lsh_bits"),
        ({"lsh_bits": True}, "lsh_bits"),
        ({"outlier_rounds": -1}, "outlier_rounds"),
        ({"seed": -1}, "seed"),
        ({"remove_common_mode": 1}, "remove_common_mode"),
    ],
)
def test_config_refuses_bad_values_with_one_line(changes, message):
    with pytest.raises(ValueError, match=message) as error:
        CleaningConfig(**changes)
    assert "\n" not in str(error.value)


def test_config_defaults_are_valid_and_documented():
    config = CleaningConfig()
    assert 0 < config.outlier_similarity < config.merge_similarity < 1
    for name in CleaningConfig.field_names():
        assert f"``{name}``" in CleaningConfig.__doc__


def test_centre_is_the_renormalised_mean_of_normalised_rows():
    rows = np.array([[3.0, 0.0], [0.0, 0.5]], dtype=np.float32)
    assert np.allclose(identity_centre(rows), [np.sqrt(0.5), np.sqrt(0.5)])
    with pytest.raises(ValueError):
        identity_centre(np.zeros((0, 3)))


def test_common_mode_removal_separates_non_negative_features():
    rng = np.random.default_rng(0)
    relu = np.maximum(rng.standard_normal((50, 32)) + 1.0, 0.0)  # pooled ReLU features: all non-negative
    raw = prepare_embeddings(relu, remove_common_mode=False)
    removed = prepare_embeddings(relu)
    off = ~np.eye(50, dtype=bool)
    assert (raw @ raw.T)[off].mean() > 0.5
    assert abs((removed @ removed.T)[off].mean()) < 0.1
    assert np.allclose(np.linalg.norm(removed, axis=1), 1.0, atol=1e-5)


def test_outlier_split_drops_foreign_rows_and_reestimates_the_centre():
    rng = np.random.default_rng(1)
    person = _unit(rng.standard_normal(64))
    own = _cluster(rng, person, 12, 0.7)
    foreign = _unit(rng.standard_normal((3, 64))).astype(np.float32)
    rows = np.concatenate([own[:6], foreign, own[6:]])  # foreign rows at 6, 7, 8
    split = split_outliers(rows, CleaningConfig(outlier_similarity=0.5))
    assert split.dropped == [6, 7, 8]
    assert split.kept == [0, 1, 2, 3, 4, 5, 9, 10, 11, 12, 13, 14]
    assert np.allclose(split.centre, identity_centre(rows[split.kept]))
    # re-estimation helps: the final centre is nearer the person than the centre of every row
    assert split.centre @ person > identity_centre(rows) @ person
    again = split_outliers(rows, CleaningConfig(outlier_similarity=0.5))
    assert again.kept == split.kept and np.array_equal(again.centre, split.centre)


def test_small_identities_and_identities_without_a_majority_keep_every_image():
    rng = np.random.default_rng(2)
    rows = _unit(rng.standard_normal((3, 16))).astype(np.float32)  # three strangers
    assert split_outliers(rows, CleaningConfig(min_images_for_outliers=4)).dropped == []
    strangers = _unit(rng.standard_normal((8, 16))).astype(np.float32)
    assert split_outliers(strangers, CleaningConfig(outlier_similarity=0.9)).dropped == []


def test_lsh_signatures_are_deterministic_from_the_seed():
    config = CleaningConfig(lsh_tables=4, lsh_bits=6, seed=3)
    centre = _unit(np.random.default_rng(4).standard_normal(32)).astype(np.float32)
    first = lsh_signatures(centre, lsh_planes(32, config), config)
    assert first == lsh_signatures(centre, lsh_planes(32, CleaningConfig(lsh_tables=4, lsh_bits=6, seed=3)), config)
    assert [table for table, _ in first] == [0, 1, 2, 3]
    assert all(0 <= code < 2**6 for _, code in first)
    other = CleaningConfig(lsh_tables=4, lsh_bits=6, seed=4)
    assert lsh_signatures(centre, lsh_planes(32, other), other) != first


def test_lsh_finds_the_near_pairs_that_exact_knn_finds():
    """Recall of LSH bucketing against exact nearest_centres, at the default tables and bits."""
    rng = np.random.default_rng(5)
    config = CleaningConfig()
    people = _unit(rng.standard_normal((300, 128)))
    halves = np.concatenate([_cluster(rng, p, 2, 0.93) for p in people])  # split identities: cosine ~0.86
    centres = prepare_embeddings(halves, remove_common_mode=False)
    similarities, indices = nearest_centres(centres, k=1, block=97)
    exact = {
        tuple(sorted((i, int(j))))
        for i, (s, j) in enumerate(zip(similarities[:, 0], indices[:, 0]))
        if s >= config.merge_similarity
    }
    assert len(exact) >= 280
    planes = lsh_planes(128, config)
    buckets: dict = {}
    for index, centre in enumerate(centres):
        for bucket in lsh_signatures(centre, planes, config):
            buckets.setdefault(bucket, []).append(index)
    found = set()
    for members in buckets.values():
        names = [f"{m:04d}" for m in members]
        for a, b, _ in score_bucket(names, centres[members], config.merge_similarity):
            found.add((int(a), int(b)))
    recall = len(exact & found) / len(exact)
    mean_bucket = np.mean([len(m) for m in buckets.values()])
    print(f"LSH recall {recall:.3f} of {len(exact)} exact pairs, mean bucket {mean_bucket:.1f}")
    assert recall >= 0.95, recall
    assert all(float(centres[a].astype(np.float64) @ centres[b]) >= config.merge_similarity for a, b in found)
    mean_bucket = np.mean([len(m) for m in buckets.values()])
    assert mean_bucket < 0.1 * len(centres)  # buckets stay small: the point of LSH


def test_score_bucket_matches_brute_force_and_ignores_blocking():
    rng = np.random.default_rng(6)
    centres = _unit(rng.standard_normal((40, 8))).astype(np.float32)
    names = [f"id{i:02d}" for i in range(40)]
    expected = sorted(
        (names[i], names[j])
        for i, j in itertools.combinations(range(40), 2)
        if float(np.dot(centres[i].astype(np.float64), centres[j])) >= 0.6
    )
    for block in (1, 7, 64):
        assert [(a, b) for a, b, _ in score_bucket(names, centres, 0.6, block=block)] == expected
    with pytest.raises(ValueError, match="twice"):
        score_bucket(["a", "a"], centres[:2], 0.5)


def test_merge_resolution_is_transitive_and_order_free():
    pairs = [("d", "c"), ("b", "c"), ("x", "y"), ("e", "d"), ("y", "z")]
    expected = {"b": "b", "c": "b", "d": "b", "e": "b", "x": "x", "y": "x", "z": "x"}
    assert resolve_merges(pairs) == expected
    rng = random.Random(0)
    for _ in range(20):
        shuffled = [tuple(rng.sample(p, 2)) for p in rng.sample(pairs, len(pairs))]
        assert resolve_merges(shuffled) == expected
    assert resolve_merges([]) == {}
    assert resolve_merges([("b", "a", 0.9)]) == {"a": "a", "b": "a"}


def test_nearest_centres_is_exact_and_excludes_self():
    rng = np.random.default_rng(7)
    centres = _unit(rng.standard_normal((50, 16))).astype(np.float32)
    similarities, indices = nearest_centres(centres, k=3, block=8)
    full = centres @ centres.T
    np.fill_diagonal(full, -np.inf)
    assert np.array_equal(indices, np.argsort(-full, axis=1)[:, :3])
    assert np.allclose(similarities, np.take_along_axis(full, indices, axis=1), atol=1e-6)
    assert nearest_centres(centres[:1], k=3)[0].shape == (1, 0)


def test_predictor_returns_embeddings_only_when_asked():
    torch.manual_seed(0)
    backbone = {"depths": [1, 1], "hidden_sizes": [8, 16], "embedding_size": 8, "layer_type": "basic"}
    schema = load_schema()
    model = build_predictor(PredictorConfig.for_schema(schema, backbone), schema).eval()
    batch = torch.randn(3, 3, 256, 128, generator=torch.Generator().manual_seed(1))
    plain = model.predict_tensors(batch)
    embedded = model.predict_tensors(batch, with_embeddings=True)
    assert all(p.embedding is None for p in plain)
    assert [p.attributes for p in embedded] == [p.attributes for p in plain]
    assert [p.confidences for p in embedded] == [p.confidences for p in plain]
    vectors = np.stack([p.embedding for p in embedded])
    assert vectors.shape == (3, 16) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        pooled = model.backbone(pixel_values=batch).last_hidden_state.mean(dim=(2, 3))
    assert np.allclose(vectors, torch.nn.functional.normalize(pooled, dim=1).numpy(), atol=1e-5)
