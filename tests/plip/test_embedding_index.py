import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from plip.embedding_index import EmbeddingIndex, EmbeddingIndexError, IndexWriter, index_schema, parts_dir, search

DIM = 8


def rows(keys, kind="image"):
    return [{"key": k, "path": f"/x/{k}.jpg", "kind": kind, "text": None, "id": i} for i, k in enumerate(keys)]


def unit(n, seed=0):
    vectors = torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(vectors, dim=1)


def test_parts_resume_and_merge_into_one_file(tmp_path):
    out = tmp_path / "e.parquet"
    writer = IndexWriter(out, DIM, {"checkpoint": "A"})
    writer.write(rows(["a", "b"]), unit(2))
    writer.write(rows(["c"]), unit(1, 1))
    assert sorted(p.name for p in parts_dir(out).iterdir()) == ["part-00000000.parquet", "part-00000001.parquet"]
    # a killed run left its parts: a new writer sees their keys and goes on numbering after them
    again = IndexWriter(out, DIM, {"checkpoint": "A"})
    assert again.done_keys() == {"a", "b", "c"}
    again.write(rows(["d"]), unit(1, 2))
    assert again.finish() == 4 and not parts_dir(out).exists()
    table = pq.read_table(out)
    assert table.column("key").to_pylist() == ["a", "b", "c", "d"]
    assert table.schema.field("vector").type == pa.list_(pa.float32(), DIM)
    # a crash between publishing the merged file and removing the parts: keys are kept once
    third = IndexWriter(out, DIM, {"checkpoint": "A"})
    third.write(rows(["d", "e"]), unit(2, 3))
    assert third.finish() == 5
    assert pq.read_table(out).column("key").to_pylist() == ["a", "b", "c", "d", "e"]
    assert EmbeddingIndex(out).metadata["checkpoint"] == "A" and len(EmbeddingIndex(out)) == 5


def test_another_checkpoint_or_size_is_refused_and_overwrite_starts_again(tmp_path):
    out = tmp_path / "e.parquet"
    writer = IndexWriter(out, DIM, {"checkpoint": "A"})
    writer.write(rows(["a"]), unit(1))
    writer.finish()
    with pytest.raises(EmbeddingIndexError, match=r"other settings: checkpoint 'A' \(now 'B'\)"):
        IndexWriter(out, DIM, {"checkpoint": "B"})
    with pytest.raises(EmbeddingIndexError, match=r"dim 8 \(now 4\)"):
        IndexWriter(out, 4, {"checkpoint": "A"})
    fresh = IndexWriter(out, 4, {"checkpoint": "B"}, overwrite=True)
    assert fresh.done_keys() == set()
    with pytest.raises(ValueError, match="vectors of shape"):
        fresh.write(rows(["a"]), unit(1))


def test_search_is_exact_stable_and_independent_of_the_block_size(tmp_path):
    out = tmp_path / "e.parquet"
    writer = IndexWriter(out, DIM, {"checkpoint": "A"})
    vectors = unit(40)
    vectors[7] = vectors[3]  # a tie: file order decides
    keys = [f"k{i}" for i in range(40)]
    for start in range(0, 40, 16):
        writer.write(rows(keys[start : start + 16]), vectors[start : start + 16])
    writer.write(rows(["t0"], kind="text"), unit(1, 9))
    writer.finish()
    index = EmbeddingIndex(out)
    assert index.count("image") == 40 and index.count("text") == 1
    queries = torch.stack([vectors[3], unit(1, 5)[0]])
    expected = torch.sort(queries @ vectors.T, dim=1, descending=True, stable=True)
    for block_rows in (1, 5, 64):
        hits = search(index, queries, k=6, block_rows=block_rows)
        for q in range(2):
            assert [h.key for h in hits[q]] == [keys[i] for i in expected.indices[q, :6]]
            assert [h.score for h in hits[q]] == pytest.approx(expected.values[q, :6].tolist(), abs=1e-6)
    assert [h.key for h in hits[0][:2]] == ["k3", "k7"] and hits[0][0].rank == 1
    assert [h.key for h in search(index, queries[:1], k=3, kind="text")[0]] == ["t0"]
    table, read = index.read("image")
    assert read.shape == (40, DIM) and np.allclose(read, vectors.numpy())
    with pytest.raises(EmbeddingIndexError, match="holds 8-d vectors"):
        search(index, torch.ones(1, 4))


def test_missing_unfinished_and_foreign_files_are_one_line_errors(tmp_path):
    with pytest.raises(EmbeddingIndexError, match="no such embeddings file$"):
        EmbeddingIndex(tmp_path / "none.parquet")
    IndexWriter(tmp_path / "run.parquet", DIM, {"checkpoint": "A"}).write(rows(["a"]), unit(1))
    with pytest.raises(EmbeddingIndexError, match="holds an unfinished run: rerun python -m plip.embed"):
        EmbeddingIndex(tmp_path / "run.parquet")
    pq.write_table(pa.table({"key": ["a"]}), tmp_path / "other.parquet")
    with pytest.raises(EmbeddingIndexError, match="not an embeddings file of python -m plip.embed"):
        EmbeddingIndex(tmp_path / "other.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"junk")
    with pytest.raises(EmbeddingIndexError, match="not a readable parquet file"):
        EmbeddingIndex(tmp_path / "junk.parquet")


def _index_with(tmp_path, vectors: pa.Array, dim: int, name="index.parquet"):
    """An embeddings file written around ``vectors`` (as a hostile tool might), with ``dim`` declared."""
    schema = index_schema(dim, {"checkpoint": "A"})
    count = len(vectors)
    table = pa.table(
        {
            "key": [f"k{i}" for i in range(count)],
            "path": [f"/x/{i}.jpg" for i in range(count)],
            "kind": ["image"] * count,
            "text": pa.nulls(count, pa.string()),
            "id": pa.nulls(count, pa.int64()),
            "vector": vectors,
        }
    )
    pq.write_table(table.replace_schema_metadata(schema.metadata), tmp_path / name)
    return tmp_path / name


def test_non_finite_vectors_never_rank_and_are_counted(tmp_path):
    # Issue 19: a NaN vector was the top answer (score nan) to every query.
    good = unit(4).numpy()
    damaged = np.concatenate(
        [good[:1], np.full((1, DIM), np.nan, np.float32), good[1:2], np.full((1, DIM), np.inf, np.float32), good[2:]]
    )
    values = pa.array(damaged.reshape(-1).tolist(), pa.float32())
    vectors = pa.FixedSizeListArray.from_arrays(values, DIM)
    half_null = pa.FixedSizeListArray.from_arrays(pa.array([None] + [0.5] * (DIM - 1), pa.float32()), DIM)
    index = EmbeddingIndex(_index_with(tmp_path, pa.concat_arrays([vectors, half_null]), DIM))
    hits = search(index, unit(4)[:1], k=10)[0]
    assert sorted(h.key for h in hits) == ["k0", "k2", "k4", "k5"] and hits[0].key == "k0"
    assert all(np.isfinite(h.score) for h in hits)
    assert index.skipped_vectors == 3  # NaN, inf, a vector holding a missing value
    table, read = index.read()
    assert table.column("key").to_pylist() == ["k0", "k2", "k4", "k5"] and np.isfinite(read).all()
    assert index.skipped_vectors == 3  # counted again by each pass, not added up


def test_an_undecodable_vector_column_is_one_line_naming_the_file(tmp_path):
    missing = pa.array([[0.5] * DIM, None], type=pa.list_(pa.float32(), DIM))  # pyarrow cannot read it back
    index = EmbeddingIndex(_index_with(tmp_path, missing, DIM))
    with pytest.raises(EmbeddingIndexError, match=f"^{tmp_path / 'index.parquet'}: damaged "):
        search(index, unit(1), k=1)


def test_the_writer_never_writes_a_non_finite_vector(tmp_path):
    vectors = unit(2)
    vectors[1, 3] = float("nan")
    writer = IndexWriter(tmp_path / "out.parquet", DIM, {"checkpoint": "A"})
    with pytest.raises(ValueError, match="non-finite vectors are never written"):
        writer.write(rows(["a", "b"]), vectors)
    assert not parts_dir(tmp_path / "out.parquet").exists() or not list(parts_dir(tmp_path / "out.parquet").iterdir())


@pytest.mark.parametrize(
    "vectors, dim, message",
    [
        # Issue 19: a reshape error that did not name the file.
        (
            pa.FixedSizeListArray.from_arrays(pa.array([0.5] * 8, pa.float32()), 4),
            DIM,
            "its vectors are 4 float values each, but its metadata declares 8 float32 values each",
        ),
        (pa.array([[0.5] * DIM], pa.list_(pa.float32())), DIM, "but its metadata declares 8 float32 values each"),
        (
            pa.FixedSizeListArray.from_arrays(pa.array([0.5] * DIM, pa.float64()), DIM),
            DIM,
            "its vectors are 8 double values each",
        ),
        (pa.FixedSizeListArray.from_arrays(pa.array([0.5] * DIM, pa.float32()), DIM), 0, "not an embeddings file"),
    ],
)
def test_vectors_that_disagree_with_the_declared_size_are_one_line_naming_the_file(tmp_path, vectors, dim, message):
    path = _index_with(tmp_path, vectors, max(dim, 1))
    if dim == 0:  # a declared size that is not a positive integer
        table = pq.read_table(path)
        record = json.loads(table.schema.metadata[b"plip.embedding"]) | {"dim": 0}
        pq.write_table(table.replace_schema_metadata({b"plip.embedding": json.dumps(record).encode()}), path)
    with pytest.raises(EmbeddingIndexError) as error:
        EmbeddingIndex(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def test_a_meta_column_of_another_type_is_refused(tmp_path):
    path = _index_with(tmp_path, pa.FixedSizeListArray.from_arrays(pa.array([0.5] * DIM, pa.float32()), DIM), DIM)
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("path"), "path", pa.array([7], pa.int64()))
    pq.write_table(table, path)
    with pytest.raises(EmbeddingIndexError, match=f"^{path}: column 'path' holds int64, expected string$"):
        EmbeddingIndex(path)
