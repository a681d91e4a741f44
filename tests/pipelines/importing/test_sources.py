"""pipelines.importing.sources: each step on plain lists: entries read and selected, checked into records or
dead-lettered, duplicates, images under the decode policy, mined attributes, dense shard numbers."""

from __future__ import annotations

import io
import json

import pytest

from pipelines.importing import sources as import_sources
from pipelines.importing.job import ImportJob
from shards.sample import validate_record
from spac.attributes import load_schema
from tests.pipelines.import_datasets import IN_SCHEMA, OUT_OF_SCHEMA, person_image
from tests.pipelines.step_helpers import split


def job(fmt: str = "synthpedes", images: str = "/data/SYNTH-PEDES") -> ImportJob:
    return ImportJob(
        format=fmt,
        annotations="/data/x.json",
        images=images,
        output="/out",
        split=None,
        attributes="released" if fmt == "synthpedes" else "mine",
        shard_size=3,
        prefix="p",
        max_pixels=10_000_000,
        max_file_bytes=1 << 20,
    )


def released(**change):
    return {
        "id": 7,
        "file_path": "Part1/7/1.jpg",
        "attributes": [IN_SCHEMA],
        "captions": ["A man in red.", "He walks."],
        "prompt_caption": ["The man."],
        **change,
    }


def parse(entry, fmt="synthpedes"):
    fn = import_sources.ParseEntry(job(fmt))
    fn.setup()
    return split(list(fn.process((5, 2, entry))))


def test_read_entries_selects_a_split_and_numbers_what_it_keeps(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps([{"split": "train", "n": 0}, {"split": "test", "n": 1}, {"n": 2}, {"split": "train", "n": 3}])
    )
    entries, letters = split(list(import_sources.ReadEntries("train").process(str(path))))
    assert [(index, position, entry["n"]) for index, position, entry in entries] == [(0, 0, 0), (2, 1, 2), (3, 2, 3)]
    assert letters == []


def test_read_entries_dead_letters_where_the_list_breaks(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"n": 0}, {"n": 1}, {"n": oops}]')
    entries, [letter] = split(list(import_sources.ReadEntries(None).process(str(path))))
    assert len(entries) == 2 and letter["entry"] == 2 and letter["stage"] == "read"
    assert "invalid JSON" in letter["reason"]


def test_a_released_entry_becomes_a_record_with_verbatim_attributes():
    [item], [] = parse(released(attributes=[OUT_OF_SCHEMA]))
    record = item["record"]
    validate_record(record)
    assert (item["entry"], item["position"], record["key"], record["id"]) == (5, 2, "Part1_7_1", 7)
    assert record["source"] == "/data/SYNTH-PEDES/Part1/7/1.jpg"
    assert record["attributes"]["upper"] == {"value": "black cape", "confidence": None, "in_schema": False}
    assert record["attributes"]["hair"] == {"value": "black hair", "confidence": None, "in_schema": True}
    assert item["out_of_schema"] == [["upper", "black cape"]]
    assert record["styles"] == ["synthpedes-1", "synthpedes-2"] and record["prompt_caption"] == ["The man."]


@pytest.mark.parametrize(
    "entry, fmt",
    [
        (
            released(
                captions=["A man in a red t-shirt.", "He wears blue jeans."], prompt_caption=["The man has a hat."]
            ),
            "synthpedes",
        ),
        (
            {
                "split": "train",
                "captions": ["A man in a black coat.", "He has a backpack."],
                "file_path": "CUHK01/0001.png",
                "processed_tokens": [],
                "id": 3,
            },
            "cuhk-pedes",
        ),
    ],
)
def test_an_imported_record_stores_the_attribute_spans_of_its_texts(entry, fmt):
    from spac.language import attribute_spans

    [item], [] = parse(entry, fmt)
    record = item["record"]
    validate_record(record)
    texts = record["captions"] + record["prompt_caption"]
    assert record["attribute_spans"] == [[list(span) for span in spans] for spans in attribute_spans(texts)]
    assert all(record["attribute_spans"])


def test_blank_texts_are_dropped_and_a_second_sentence_is_not_kept():
    [item], [] = parse(released(captions=["  ", "He walks."], prompt_caption=["One.", "Two."]))
    assert item["record"]["captions"] == ["He walks."] and item["record"]["styles"] == ["synthpedes-2"]
    assert item["record"]["prompt_caption"] == ["One."]
    assert (
        import_sources.released_record(
            released(captions=["  ", "He walks."], prompt_caption=["One.", "Two."]), "/d", load_schema()
        ).dropped_texts
        == 2
    )


@pytest.mark.parametrize(
    "entry, reason",
    [
        (released(attributes=["a,b"]), "expected 6 comma-separated attributes"),
        (released(file_path="../../etc/passwd.jpg"), "must be relative to the image folder"),
        (released(file_path="/abs/1.jpg"), "must be relative to the image folder"),
        (released(id=-1), "'id': expected an integer >= 0"),
        (released(id=2**64), "larger than the index holds"),
        (released(captions=[" "], prompt_caption=[]), "at least one caption"),
        (released(captions=["caf\udce9"]), "not valid Unicode"),
        ("just text", "expected a JSON object"),
    ],
)
def test_a_malformed_released_entry_is_a_dead_letter(entry, reason):
    [], [letter] = parse(entry)
    assert letter == {"path": "/data/x.json", "entry": 5, "stage": "parse", "reason": letter["reason"]}
    assert reason in letter["reason"] and "\n" not in letter["reason"]


def test_a_cuhk_entry_becomes_a_human_captioned_record():
    entry = {
        "split": "train",
        "captions": ["A man in a black coat.", ""],
        "file_path": "CUHK01/0001.png",
        "processed_tokens": [],
        "id": 3,
    }
    [item], [] = parse(entry, "cuhk-pedes")
    record = item["record"]
    assert record["captions"] == ["A man in a black coat."] and record["styles"] == ["human"]
    assert record["prompt_caption"] == [] and record["id"] == 3 and record["file_path"] == "CUHK01/0001.png"
    assert {e["value"] for e in record["attributes"].values()} == {"unknown"}
    assert record["source"] == "/data/SYNTH-PEDES/CUHK01/0001.png"


@pytest.mark.parametrize(
    "entry, reason",
    [
        ({"split": "train", "captions": ["x"], "file_path": "a.jpg"}, "missing key 'id'"),
        ({"id": 1, "img_path": "a.jpg", "captions": ["x"], "split": "train"}, "expected CUHK-PEDES"),
    ],
)
def test_a_malformed_cuhk_entry_is_a_dead_letter(entry, reason):
    [], [letter] = parse(entry, "cuhk-pedes")
    assert reason in letter["reason"] and not letter["reason"].startswith("<entry>")


def test_duplicates_keep_the_first_entry_in_the_file():
    items = [{"entry": n, "record": {"file_path": "Part1/7/1.jpg" if n != 9 else "other.jpg"}} for n in (4, 2, 9)]
    kept, letters = split(list(import_sources.DropDuplicates("/data/x.json").process(("k", items))))
    assert [item["entry"] for item in kept] == [2]
    assert sorted((one["entry"], one["reason"]) for one in letters) == [
        (4, "the same file_path as entry 2, which is kept"),
        (9, "key k (file_path 'Part1/7/1.jpg') as entry 2, which is kept"),
    ]


def test_load_image_encodes_the_corpus_jpeg_or_dead_letters(tmp_path):
    good, broken = tmp_path / "good.png", tmp_path / "broken.jpg"
    person_image(1).save(good)
    buffer = io.BytesIO()
    person_image(2).save(buffer, format="JPEG")
    broken.write_bytes(buffer.getvalue()[:200])
    fn = import_sources.LoadImage(str(tmp_path), 10_000_000, 1 << 20)
    items = [
        {"entry": n, "record": {"source": str(path), "file_path": path.name}}
        for n, path in enumerate([good, broken, tmp_path / "missing.jpg"])
    ]
    loaded, letters = split([out for item in items for out in fn.process(item)])
    assert len(loaded) == 1 and loaded[0]["jpg"][:3] == b"\xff\xd8\xff"
    reasons = {letter["entry"]: letter["reason"] for letter in letters}
    assert reasons[2] == "image file not found" and "corrupt" in reasons[1]
    assert all(letter["stage"] == "decode" for letter in letters)


def test_mined_attributes_do_not_depend_on_the_batch():
    captions = [["A man in a black jacket and blue jeans."], ["A woman with long black hair in a red dress."]]
    items = [{"entry": n, "record": {"captions": c, "attributes": {}}} for n, c in enumerate(captions)]
    fn = import_sources.MineAttributes()
    together = list(fn.process(items))
    alone = [out for item in items for out in fn.process([item])]
    assert together == alone
    assert together[0]["record"]["attributes"]["upper"] == {"value": "black jacket", "confidence": None}
    assert together[1]["record"]["attributes"]["gender"]["value"] == "woman"


def test_shards_are_blocks_of_positions_numbered_densely():
    blocks = [0, 2, 5]  # blocks 1, 3 and 4 lost every entry
    item = {"position": 7, "out_of_schema": [], "jpg": b"j", "record": {"key": "k"}}
    assert import_sources.assign_shard(item, blocks, 3)[0] == 1
    assert import_sources.assign_shard({**item, "position": 16}, blocks, 3)[0] == 2
    assert import_sources.assign_shard({**item, "position": 0}, blocks, 3) == (
        0,
        {"__key__": "k", "jpg": b"j", "json": {"key": "k"}},
    )
