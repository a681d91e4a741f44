import json

import pytest
from PIL import Image

import shards
from plip.programs.eval_data import (
    DatasetFormatError,
    eval_set_from_shards,
    load_eval_split,
    parse_identities,
    read_dataset_json,
    read_split,
)
from plip.retrieval import evaluate
from tests.plip.pedes_fixtures import COLOURS, NAMES, ColourModel, make_entries, make_rstpreid_entries, write_dataset

SPLITS = {0: "train", 1: "test", 2: "test", 3: "val"}


def _bad(field, value):
    entries = make_entries(SPLITS)
    if value is None:
        del entries[3][field]
    else:
        entries[3][field] = value
    return entries


@pytest.mark.parametrize(
    "entries, message",
    [
        (_bad("captions", []), "entry 3: 'captions' must be a non-empty list of strings"),
        (_bad("captions", ["ok", 5]), "entry 3: 'captions' must be a non-empty list of strings"),
        (_bad("id", "7"), "entry 3: 'id' must be a non-negative integer"),
        (_bad("id", -1), "entry 3: 'id' must be a non-negative integer"),
        (_bad("file_path", None), "entry 3: 'file_path' must be a non-empty string"),
        (_bad("file_path", "../secret.jpg"), "entry 3: 'file_path' must be relative"),
        (_bad("split", None), "entry 3: 'split' must be a string"),
        (_bad("processed_tokens", [["a"], "b"]), "entry 3: 'processed_tokens' must be a list of token lists"),
    ],
)
def test_bad_entry_is_named_by_index_and_field(tmp_path, entries, message):
    path = tmp_path / "reid_raw.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(DatasetFormatError) as caught:
        read_dataset_json(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[{", r"not valid JSON \(line 1"),
        ('{"a": 1}', "must hold a JSON list"),
        ("[]", "holds no entries"),
        ("[3]", "entry 0: must be an object"),
    ],
)
def test_bad_documents(tmp_path, text, message):
    path = tmp_path / "ICFG_PEDES.json"
    path.write_text(text)
    with pytest.raises(DatasetFormatError, match=message):
        read_dataset_json(path)


def test_split_is_optional_only_when_not_required(tmp_path):
    entries = make_entries({0: "train"})
    for entry in entries:
        del entry["split"]
    path = tmp_path / "synthpedes_dataset.json"
    path.write_text(json.dumps(entries))
    assert read_dataset_json(path, require_split=False) == entries
    with pytest.raises(DatasetFormatError, match="entry 0: 'split'"):
        read_dataset_json(path)


def test_test_split_from_the_raw_file(tmp_path):
    write_dataset(tmp_path, make_entries(SPLITS))
    queries, gallery = load_eval_split("CUHK-PEDES", tmp_path, "test")
    assert len(queries) == 2 * 4 and set(queries.ids) == {1, 2}
    assert gallery.keys == ("1/0.jpg", "1/1.jpg", "2/0.jpg", "2/1.jpg") and gallery.ids == (1, 1, 2, 2)
    _, valid = load_eval_split("CUHK-PEDES", tmp_path, "val")
    assert valid.ids == (3, 3)


def test_split_file_is_preferred_and_duplicate_images_share_one_gallery_slot(tmp_path):
    write_dataset(tmp_path, make_entries(SPLITS))
    entries = make_entries({2: "test"}, images_per_id=1)
    (tmp_path / "CUHK-PEDES-test.json").write_text(json.dumps(entries + entries))
    queries, gallery = load_eval_split("CUHK-PEDES", tmp_path, "test")
    assert gallery.keys == ("2/0.jpg",) and len(queries) == 4


def test_missing_image_and_conflicting_identity_are_errors(tmp_path):
    entries = make_entries(SPLITS)
    write_dataset(tmp_path, entries)
    (tmp_path / "imgs" / "2" / "1.jpg").unlink()
    with pytest.raises(DatasetFormatError, match=r"entry 5: image not found: .*2/1\.jpg"):
        load_eval_split("CUHK-PEDES", tmp_path, "test")
    conflicting = make_entries({1: "test"}, images_per_id=1)
    conflicting.append(dict(conflicting[0], id=2))
    (tmp_path / "CUHK-PEDES-test.json").write_text(json.dumps(conflicting))
    with pytest.raises(DatasetFormatError, match="entry 1: 'file_path' '1/0.jpg' already listed with identity 1"):
        load_eval_split("CUHK-PEDES", tmp_path, "test")


def test_unknown_dataset_split_or_missing_file(tmp_path):
    with pytest.raises(DatasetFormatError, match="unknown dataset"):
        load_eval_split("MARKET", tmp_path)
    with pytest.raises(DatasetFormatError, match="unknown split"):
        load_eval_split("ICFG-PEDES", tmp_path, "dev")
    with pytest.raises(DatasetFormatError, match="neither ICFG-PEDES-test.json nor ICFG_PEDES.json"):
        load_eval_split("ICFG-PEDES", tmp_path)


def test_parse_identities():
    selection = parse_identities("3-5, 9")
    assert [i in selection for i in (2, 3, 5, 6, 9)] == [False, True, True, False, True]
    for bad in ("a-b", "5-3", "", "1-"):
        with pytest.raises(ValueError):
            parse_identities(bad)


def test_shard_eval_set_keeps_selected_identities_and_all_texts(monkeypatch):
    def fake_samples(source):
        assert source == "corpus-{000000..000001}.tar"
        for identity in (1, 2, 3):
            record = {
                "id": identity,
                "captions": [f"style a {identity}", f"style b {identity}"],
                "prompt_caption": [f"template {identity}"],
                "file_path": f"p/{identity}.jpg",
            }
            yield {"__key__": f"k{identity}", "jpg": Image.new("RGB", (20, 40)), "json": record, "txt": ""}

    monkeypatch.setattr(shards, "iter_samples", fake_samples, raising=False)
    queries, gallery = eval_set_from_shards("corpus-{000000..000001}.tar", parse_identities("2-3"))
    assert queries.texts == ("style a 2", "style b 2", "template 2", "style a 3", "style b 3", "template 3")
    assert queries.ids == (2, 2, 2, 3, 3, 3)
    assert gallery.keys == ("k2", "k3") and gallery.load(0).size == (128, 256)
    with pytest.raises(DatasetFormatError, match="no samples with the selected identities"):
        eval_set_from_shards("corpus-{000000..000001}.tar", parse_identities("7"))


def test_held_out_identities_of_real_shards(tmp_path):
    from shards import GROUPS, encode_image, make_sample, write_shard

    samples = []
    for identity in range(4):
        for n in range(2):
            name = NAMES[identity]
            record = {
                "key": f"p{identity}_{n}",
                "id": identity,
                "file_path": f"Part1/{identity}/{n}.jpg",
                "attributes": {g: {"value": "unknown", "confidence": 0.5} for g in GROUPS},
                "captions": [f"a {name} coat", f"dressed in {name}"],
                "styles": ["a", "b"],
                "prompt_caption": [f"the person wears {name}"],
                "source": f"raw/{identity}_{n}.png",
            }
            samples.append(make_sample(record, encode_image(Image.new("RGB", (32, 64), COLOURS[identity]))))
    write_shard(str(tmp_path), 0, samples[:4])
    write_shard(str(tmp_path), 1, samples[4:])
    queries, gallery = eval_set_from_shards(str(tmp_path), parse_identities("1-2"))
    assert sorted(set(gallery.ids)) == [1, 2] and len(gallery) == 4 and len(queries) == 12
    metrics = evaluate(ColourModel(), queries, gallery, batch_size=3)
    assert (metrics["R@1"], metrics["mAP"], metrics["queries"]) == (100.0, 100.0, 12)


RSTP_SPLITS = {0: "train", 1: "test", 2: "test", 3: "val"}


def _bad_rstpreid(field, value, index=3):
    entries = make_rstpreid_entries(RSTP_SPLITS, images_per_id=2)
    if value is None:
        del entries[index][field]
    else:
        entries[index][field] = value
    return entries


@pytest.mark.parametrize(
    "entries, message",
    [
        (_bad_rstpreid("img_path", None), "entry 3: 'img_path' must be a non-empty string, got None"),
        (_bad_rstpreid("img_path", "  "), "entry 3: 'img_path' must be a non-empty string"),
        (_bad_rstpreid("img_path", "../0001_c1_0000.jpg"), "entry 3: 'img_path' must be relative"),
        (_bad_rstpreid("img_path", 12), "entry 3: 'img_path' must be a non-empty string, got 12"),
        (_bad_rstpreid("id", None), "entry 3: 'id' must be a non-negative integer, got None"),
        (_bad_rstpreid("id", True), "entry 3: 'id' must be a non-negative integer, got True"),
        (_bad_rstpreid("captions", []), "entry 3: 'captions' must be a non-empty list of strings"),
        (_bad_rstpreid("captions", ["ok", ""]), "entry 3: 'captions' must be a non-empty list of strings"),
        (_bad_rstpreid("split", None), "entry 3: 'split' must be a string"),
        (_bad_rstpreid("split", ["test"]), "entry 3: 'split' must be a string"),
        (_bad_rstpreid("img_path", None, index=0), r"entry 0: neither 'file_path' .* nor 'img_path' .* found"),
        (make_rstpreid_entries(RSTP_SPLITS)[:2] + make_entries({5: "test"}), "entry 2: 'img_path' must be a non-empty"),
        (make_rstpreid_entries(RSTP_SPLITS)[:1] + [7], "entry 1: must be an object, got int"),
    ],
)
def test_bad_rstpreid_entry_is_named_by_index_and_field(tmp_path, entries, message):
    path = tmp_path / "data_captions.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(DatasetFormatError, match=message) as caught:
        read_dataset_json(path)
    assert str(caught.value).startswith(f"{path}: entry ") and "\n" not in str(caught.value)


def test_rstpreid_entries_read_into_the_cuhk_layout_and_splits_route_val_to_valid(tmp_path):
    raw = make_rstpreid_entries(RSTP_SPLITS, images_per_id=2)
    raw[0]["extra"] = {"kept": True}
    write_dataset(tmp_path, raw, "data_captions.json")
    entries = read_dataset_json(tmp_path / "data_captions.json")
    assert entries[0] == {
        "split": "train",
        "captions": raw[0]["captions"],
        "file_path": "0000_c1_0000.jpg",
        "extra": {"kept": True},
        "id": 0,
    }
    assert raw[0]["img_path"] == "0000_c1_0000.jpg"  # the document is read, not changed
    queries, gallery = load_eval_split("RSTPReid", tmp_path, "test")
    assert gallery.keys == ("0001_c1_0000.jpg", "0001_c2_0001.jpg", "0002_c1_0000.jpg", "0002_c2_0001.jpg")
    assert gallery.images[0] == tmp_path / "imgs" / "0001_c1_0000.jpg" and gallery.ids == (1, 1, 2, 2)
    assert len(queries) == 8 and set(queries.ids) == {1, 2}
    assert load_eval_split("RSTPReid", tmp_path, "val")[1].ids == (3, 3)
    split = read_split("RSTPReid", tmp_path, "train")
    assert (split.source, split.indices, split.path_key) == (str(tmp_path / "data_captions.json"), [0, 1], "img_path")
    metrics = evaluate(ColourModel(), queries, gallery, batch_size=3)
    assert (metrics["R@1"], metrics["queries"]) == (100.0, 8)


def test_rstpreid_image_errors_name_the_rstpreid_field(tmp_path):
    raw = make_rstpreid_entries(RSTP_SPLITS, images_per_id=2)
    write_dataset(tmp_path, raw, "data_captions.json")
    (tmp_path / "imgs" / raw[5]["img_path"]).unlink()
    with pytest.raises(DatasetFormatError, match=r"data_captions.json: entry 5: image not found: .*0002_c2_0001\.jpg"):
        load_eval_split("RSTPReid", tmp_path, "test")
    conflicting = raw[2:3] + [dict(raw[2], id=2)]
    (tmp_path / "data_captions.json").write_text(json.dumps(conflicting))
    with pytest.raises(
        DatasetFormatError, match="entry 1: 'img_path' '0001_c1_0000.jpg' already listed with identity 1"
    ):
        load_eval_split("RSTPReid", tmp_path, "test")
    with pytest.raises(DatasetFormatError, match="neither RSTPReid-test.json nor data_captions.json found"):
        load_eval_split("RSTPReid", tmp_path / "imgs")
