import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from plip.embedding_index import EmbeddingIndex, EmbeddingIndexError, IndexWriter, parts_dir, search

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
        writer.write(rows(keys[start:start + 16]), vectors[start:start + 16])
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
