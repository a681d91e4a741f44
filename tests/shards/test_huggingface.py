import pytest

from shards import shard_urls
from tests.shards.corpus_factory import write_corpus


def test_hugging_face_datasets_reads_the_shards_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    datasets = pytest.importorskip("datasets")
    written = write_corpus(str(tmp_path / "corpus"), shards=2, per_shard=3)
    dataset = datasets.load_dataset(
        "webdataset",
        data_files={"train": shard_urls(str(tmp_path / "corpus"))},
        split="train",
        cache_dir=str(tmp_path / "hf-cache"),
    )
    assert dataset.num_rows == 6
    assert dataset["__key__"] == [s["__key__"] for s in written]
    first = dataset[0]
    assert first["jpg"].size == (128, 256)
    assert first["txt"] == written[0]["txt"]
    assert first["json"]["attributes"]["hair"] == written[0]["json"]["attributes"]["hair"]
    assert first["json"]["captions"] == written[0]["json"]["captions"]
