import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from plip.checkpoint import save_checkpoint
from plip.embedding import Embedder, load_embedder
from plip.embedding_index import IndexWriter, parts_dir
from plip.programs import search
from plip.programs.embed import main
from shards.keys import make_key
from spac.render import render_dataset
from tests.plip._tiny_model import single_thread, tiny_model  # noqa: F401  (single_thread: autouse fixture)
from tests.plip.train_corpus import write_rendered_corpus

TEXTS = "a man in a blue shirt\n\nthe woman with a red bag\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("embed")
    render_dataset(root / "people", identities=3, images_per_identity=2, seed=4)
    (root / "texts.txt").write_text(TEXTS, encoding="utf-8")
    model = tiny_model(seed=2, tic={"weight": 0}, iap={"weight": 0})
    return {
        "root": root,
        "people": root / "people",
        "texts": root / "texts.txt",
        "checkpoint": save_checkpoint(root / "ckpt", model),
        "other": save_checkpoint(root / "other", tiny_model(seed=3, tic={"weight": 0}, iap={"weight": 0})),
    }


def run(inputs, out: Path, *extra: str) -> int:
    return main(
        [
            "--checkpoint",
            str(inputs["checkpoint"]),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--batch-size",
            "2",
            "--quiet",
            *extra,
        ]
    )


def test_a_folder_and_a_text_file_into_one_parquet_file(inputs, tmp_path):
    out = tmp_path / "e.parquet"
    assert run(inputs, out, "--images", str(inputs["people"]), "--texts", str(inputs["texts"])) == 0
    table = pq.read_table(out)
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 32)
    assert table.column("key").to_pylist() == [make_key(f"{i:05d}/{n:03d}.jpg") for i in range(3) for n in range(2)] + [
        "text:1",
        "text:3",
    ]
    assert table.column("kind").to_pylist() == ["image"] * 6 + ["text"] * 2
    assert table.column("id").to_pylist() == [0, 0, 1, 1, 2, 2, None, None]
    assert table.column("text").to_pylist()[6:] == ["a man in a blue shirt", "the woman with a red bag"]
    vectors = torch.tensor(table.column("vector").to_pylist())
    api = load_embedder(inputs["checkpoint"])
    paths = sorted(inputs["people"].rglob("*.jpg"))
    assert table.column("path").to_pylist()[:6] == [str(p) for p in paths]
    assert torch.allclose(vectors[:6], api.embed_images(paths), atol=1e-5)
    assert torch.allclose(
        vectors[6:], api.embed_texts(["a man in a blue shirt", "the woman with a red bag"]), atol=1e-5
    )
    # DataLoader workers read the images the same way
    assert run(inputs, tmp_path / "w.parquet", "--images", str(inputs["people"]), "--workers", "1") == 0
    assert pq.read_table(tmp_path / "w.parquet").column("vector").to_pylist() == table.column("vector").to_pylist()[:6]


def test_a_killed_run_resumes_by_key_and_ends_like_an_uninterrupted_one(inputs, tmp_path, monkeypatch, capsys):
    full, resumed = tmp_path / "full.parquet", tmp_path / "resumed.parquet"
    assert run(inputs, full, "--images", str(inputs["people"])) == 0
    write = IndexWriter.write
    calls = []

    def killed_after_two(self, rows, vectors):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(rows))
        write(self, rows, vectors)

    monkeypatch.setattr(IndexWriter, "write", killed_after_two)
    assert run(inputs, resumed, "--images", str(inputs["people"])) == 130  # interrupted: 2 batches are saved
    assert not resumed.exists() and len(list(parts_dir(resumed).iterdir())) == 2
    monkeypatch.setattr(IndexWriter, "write", write)
    capsys.readouterr()
    assert (
        main(
            [
                "--checkpoint",
                str(inputs["checkpoint"]),
                "--out",
                str(resumed),
                "--images",
                str(inputs["people"]),
                "--device",
                "cpu",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    assert "6 rows (2 embedded now, 4 already there)" in capsys.readouterr().err
    a, b = pq.read_table(full), pq.read_table(resumed)
    assert a.column("key").to_pylist() == b.column("key").to_pylist()
    assert torch.allclose(
        torch.tensor(a.column("vector").to_pylist()), torch.tensor(b.column("vector").to_pylist()), atol=1e-6
    )
    assert not parts_dir(resumed).exists()
    # another checkpoint never mixes into the same file
    assert (
        main(
            [
                "--checkpoint",
                str(inputs["other"]),
                "--out",
                str(resumed),
                "--images",
                str(inputs["people"]),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was written with other settings: checkpoint" in err[0] and "--overwrite" in err[0]


def test_manifests_and_shards(inputs, tmp_path):
    people = inputs["people"]
    (tmp_path / "list.txt").write_text(f"{people}/00001/000.jpg\n{people}/00002/001.jpg\n", encoding="utf-8")
    (tmp_path / "list.csv").write_text("path,id\npeople/00001/000.jpg,17\n", encoding="utf-8")
    (tmp_path / "people").symlink_to(people)
    assert run(inputs, tmp_path / "txt.parquet", "--images", str(tmp_path / "list.txt")) == 0
    assert run(inputs, tmp_path / "csv.parquet", "--images", str(tmp_path / "list.csv")) == 0
    txt, csv = pq.read_table(tmp_path / "txt.parquet"), pq.read_table(tmp_path / "csv.parquet")
    assert txt.num_rows == 2 and txt.column("id").to_pylist() == [None, None]
    assert csv.column("key").to_pylist() == ["people_00001_000"] and csv.column("id").to_pylist() == [17]
    assert csv.column("vector").to_pylist()[0] == pytest.approx(txt.column("vector").to_pylist()[0], abs=1e-6)
    corpus = write_rendered_corpus(
        tmp_path / "corpus", identities=2, images_per_identity=2, shards=2, first_identity=40
    )
    assert run(inputs, tmp_path / "shards.parquet", "--shards", str(corpus)) == 0
    table = pq.read_table(tmp_path / "shards.parquet")
    assert sorted(table.column("id").to_pylist()) == [40, 40, 41, 41]
    assert all(p.endswith(".tar") for p in table.column("path").to_pylist())
    # search shows thumbnails of shard samples too (read back from their shards)
    assert (
        search.main(
            [
                "--checkpoint",
                str(inputs["checkpoint"]),
                "--index",
                str(tmp_path / "shards.parquet"),
                "a red coat",
                "-k",
                "4",
                "--html",
                str(tmp_path / "s.html"),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    page = (tmp_path / "s.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 4 and "image unavailable" not in page


def test_bad_images_stop_with_one_line_or_are_skipped_and_counted(inputs, tmp_path, capsys):
    folder = tmp_path / "people"
    folder.mkdir()
    for name in ("1/a.jpg", "1/b.jpg"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes((inputs["people"] / "00000/000.jpg").read_bytes())
    (folder / "1/b.jpg").write_bytes(b"GIF89a not really")
    assert run(inputs, tmp_path / "e.parquet", "--images", str(folder)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot read image {folder / '1/b.jpg'}" in err[0]
    assert (
        main(
            [
                "--checkpoint",
                str(inputs["checkpoint"]),
                "--out",
                str(tmp_path / "e.parquet"),
                "--images",
                str(folder),
                "--device",
                "cpu",
                "--skip-bad",
            ]
        )
        == 0
    )
    assert "1 rows (1 embedded now, 0 already there, 1 unreadable skipped)" in capsys.readouterr().err


def test_a_non_finite_embedding_is_that_items_failure_and_never_written(inputs, tmp_path, monkeypatch, capsys):
    # Issue 19: plip.embed must never write a NaN vector (it would rank first for every query).
    original = Embedder.embed_image_tensors
    calls = []

    def one_nan(self, images, normalize=True):
        vectors = original(self, images, normalize).clone()
        calls.append(len(calls))
        if len(calls) == 1:
            vectors[1, 0] = float("nan")  # the second image of the first batch
        return vectors

    monkeypatch.setattr(Embedder, "embed_image_tensors", one_nan)
    paths = sorted(inputs["people"].rglob("*.jpg"))
    out = tmp_path / "e.parquet"
    assert run(inputs, out, "--images", str(inputs["people"])) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m plip.embed: error: {paths[1]}: the embedding of 00000_001 is not finite (NaN or inf)"]
    calls.clear()
    assert (
        main(
            [
                "--checkpoint",
                str(inputs["checkpoint"]),
                "--out",
                str(out),
                "--images",
                str(inputs["people"]),
                "--texts",
                str(inputs["texts"]),
                "--device",
                "cpu",
                "--batch-size",
                "2",
                "--skip-bad",
            ]
        )
        == 0
    )
    assert "7 rows (7 embedded now, 0 already there, 1 non-finite embeddings skipped)" in capsys.readouterr().err
    table = pq.read_table(out)
    assert "00000_001" not in table.column("key").to_pylist() and len(table) == 7
    assert torch.isfinite(torch.tensor(table.column("vector").to_pylist())).all()


def test_a_damaged_text_encoder_writes_no_text_vector(inputs, tmp_path, capsys):
    model = tiny_model(seed=2, tic={"weight": 0}, iap={"weight": 0})
    with torch.no_grad():
        for parameter in model.text_encoder.parameters():
            parameter.fill_(float("nan"))
    damaged = save_checkpoint(tmp_path / "nan", model)
    out = tmp_path / "e.parquet"
    assert (
        main(
            [
                "--checkpoint",
                str(damaged),
                "--out",
                str(out),
                "--texts",
                str(inputs["texts"]),
                "--device",
                "cpu",
                "--skip-bad",
            ]
        )
        == 0
    )
    assert "0 rows (0 embedded now, 0 already there, 2 non-finite embeddings skipped)" in capsys.readouterr().err
    assert len(pq.read_table(out)) == 0


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "nothing to embed: give --images, --shards and / or --texts"),
        (["--images", "{tmp}/nope"], "--images {tmp}/nope: no such folder or manifest"),
        (["--images", "{tmp}/x.json"], "a file but not a manifest"),
        (["--texts", "{tmp}/empty.txt"], "holds no text"),
        (["--images", "{tmp}/bad.jsonl"], "bad.jsonl: row 1: needs a non-empty 'path'"),
        (["--images", "{tmp}/bad_id.jsonl"], "bad_id.jsonl: row 1: id 'p012' is not a non-negative integer"),
        (["--images", "{tmp}", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(inputs, tmp_path, capsys, args, message):
    (tmp_path / "x.json").write_text("{}")
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": 3}) + "\n")
    (tmp_path / "bad_id.jsonl").write_text(json.dumps({"path": "a.jpg", "id": "p012"}) + "\n")
    argv = [a.format(tmp=tmp_path) for a in args]
    assert run(inputs, tmp_path / "e.parquet", *argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(tmp=tmp_path) in err[0], err
