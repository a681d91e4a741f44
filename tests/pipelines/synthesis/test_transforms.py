"""pipelines.synthesis.transforms: decoding with dead letters, identity filters, shard assignment."""

from __future__ import annotations

import io
import json

from PIL import Image

from pipelines.synthesis import transforms
from pipelines.synthesis.inputs import ImageRef
from pipelines.synthesis.job import Sentences
from spac.captioning.library import SentencesOption
from spac.corpus.filters import FilterConfig
from tests.pipelines.colour_predictor import RED, solid_image
from tests.pipelines.step_helpers import record, split, tagged

_ADDENDA = "\n".join(
    f'  {g}: ["{{they}} {{v:show}} {{a {g}}}."]' for g in ("hair", "upper", "lower", "shoes", "belongings")
)
LIBRARY_TEXT = f'sentences:\n  none: ["A {{gender}} was seen here."]\naddenda:\n{_ADDENDA}\n'  # a --sentences file


def test_decode_image_good_corrupt_and_not_an_image(tmp_path):
    good, truncated, text = tmp_path / "good.png", tmp_path / "cut.jpg", tmp_path / "notes.jpg"
    solid_image(RED, size=(40, 90)).save(good)
    buffer = io.BytesIO()
    solid_image(RED).save(buffer, format="JPEG")
    truncated.write_bytes(buffer.getvalue()[:200])
    text.write_text("hello")
    decode = transforms.DecodeImage()
    refs = [ImageRef(str(p), f"1/{p.name}", "1", p.stem) for p in (good, truncated, text)]
    images, dead = split([o for ref in refs for o in decode.process(ref)])
    assert len(images) == 1 and Image.open(io.BytesIO(images[0]["jpg"])).size == (128, 256)
    assert [d["path"] for d in dead] == [str(truncated), str(text)]
    assert dead[0]["stage"] == "decode" and dead[0]["reason"].startswith("corrupt")
    assert dead[1]["reason"] == "not a decodable image"


def test_filter_identity_applies_vote_and_reports_reasons():
    records = [record(f"k{i}", "7") for i in range(4)] + [record("k4", "7", gender="woman")]
    produced = list(transforms.FilterIdentity(FilterConfig(min_images=3, max_images=3)).process(("7", records)))
    kept, dead = split(produced)
    assert len(kept) == 3 and {r["attributes"]["gender"]["value"] for r in kept} == {"man"}
    assert sorted(d["reason"] for d in dead) == ["over_identity_cap"] * 2
    assert tagged(produced, transforms.SIZES) == [("7", 3)]  # what the shard ordering numbers from


def test_filter_identity_dead_letters_a_second_file_with_a_taken_key():
    records = [record(f"k{i}", "7") for i in range(3)]
    twin = {**records[1], "source": "/zz/7/twin.jpg"}
    identity_filter = transforms.FilterIdentity(FilterConfig(min_images=1, max_images=9))
    produced = list(identity_filter.process(("7", [twin, *records])))
    kept, dead = split(produced)
    assert sorted(r["key"] for r in kept) == ["k0", "k1", "k2"] and records[1]["source"] in {r["source"] for r in kept}
    assert dead == [
        {"path": "/zz/7/twin.jpg", "stage": "write", "reason": f"key k1 already taken by {records[1]['source']}"}
    ]
    assert tagged(produced, transforms.SIZES) == [("7", 3)]


def test_a_records_jpeg_is_set_aside_keyed_for_the_placement_join():
    kept = record("k0", "7")
    produced = list(transforms.set_image_aside(kept))
    assert split(produced)[0] == [{field: value for field, value in kept.items() if field != "jpg"}]
    assert tagged(produced, transforms.IMAGES) == [("7", (("k0", "/in/k0.jpg"), kept["jpg"]))]


def test_an_identity_with_nothing_kept_reports_no_size():
    produced = list(transforms.FilterIdentity(FilterConfig(min_images=5)).process(("7", [record("k0", "7")])))
    assert split(produced)[0] == [] and tagged(produced, transforms.SIZES) == []


def test_a_file_name_that_is_not_utf8_is_a_dead_letter_not_a_crash(tmp_path):
    from apache_beam.io.filesystem import FileMetadata

    root = str(tmp_path)
    bad = FileMetadata(f"{root}/7/caf\udce9.jpg", 10)  # b"caf\xe9.jpg" as os.listdir decodes it
    good = FileMetadata(f"{root}/7/1.jpg", 10)
    to_refs = transforms.ToImageRefs(root)
    main, dead = split(list(to_refs.process(bad)) + list(to_refs.process(good)))
    assert [ref.key for ref in main] == ["7_1"]
    assert dead == [
        {
            "path": f"{root}/7/caf\\xe9.jpg",
            "stage": "read",
            "reason": "file name is not valid UTF-8 (rename the file to keep it)",
        }
    ]
    json.dumps(dead, ensure_ascii=False).encode("utf-8")  # storable as it is


def test_decode_refuses_bombs_oversized_files_and_missing_files_with_reasons(tmp_path):
    bomb, big, missing = tmp_path / "bomb.png", tmp_path / "big.jpg", tmp_path / "gone.jpg"
    Image.new("L", (7000, 7000)).save(bomb, optimize=True)  # 49 MP, a few KB on disk
    big.write_bytes(b"\xff\xd8\xff" + b"\x00" * 300_000)
    decode = transforms.DecodeImage(max_pixels=40_000_000, max_bytes=200_000)
    refs = [ImageRef(str(p), f"1/{p.name}", "1", p.stem) for p in (bomb, big, missing)]
    images, dead = split([o for ref in refs for o in decode.process(ref)])
    assert images == []
    assert [d["reason"] for d in dead][:2] == [
        "image too large: 7000x7000 pixels exceed the budget of 40000000",
        "file larger than 200000 bytes",
    ]
    assert dead[2]["reason"].startswith("unreadable file") and "\n" not in dead[2]["reason"]


def test_add_captions_with_a_sentences_library_builds_its_captioner_once_per_worker(tmp_path):
    from spac.attributes import load_schema
    from spac.captioning.captioner import Captioner
    from spac.captioning.library import library_for

    schema = load_schema()
    for add in (False, True):
        step = transforms.AddCaptions(3, None, Sentences(SentencesOption("lib.yaml", add), LIBRARY_TEXT, "sha"))
        step.setup()
        rec = record("k1", "7")
        (out,) = list(step.process(rec))
        expected = Captioner(schema, library=library_for(SentencesOption("lib.yaml", add), schema, LIBRARY_TEXT))(
            transforms.values_of(rec), "k1", seed=3
        )
        assert out["prompt_caption"] == [expected[-1].text] and out["captions"] == [c.text for c in expected[:-1]]
        if not add:
            assert out["prompt_caption"][0].startswith("A man was seen here. He shows ")
    assert transforms.add_captions(record("k1", "7"), 3, None)["captions"] == out["captions"]  # same styles


def test_the_caption_step_stores_spac_languages_spans_of_every_text(monkeypatch):
    from spac import language

    def spacy_spans(texts):
        return [[list(span) for span in spans] for spans in language.attribute_spans(texts)]

    out = transforms.add_captions(record("k1", "7"), 3, None)
    texts = out["captions"] + out["prompt_caption"]
    assert len(texts) == 3 and len(out["attribute_spans"]) == 3
    assert out["attribute_spans"] == spacy_spans(texts)
    assert all(spans for spans in out["attribute_spans"])  # every text of a red profile names attributes
    step = transforms.AddCaptions(3, None, Sentences(SentencesOption("lib.yaml"), LIBRARY_TEXT, "sha"))
    step.setup()
    (library,) = list(step.process(record("k1", "7")))
    texts = library["captions"] + library["prompt_caption"]
    assert library["attribute_spans"] == spacy_spans(texts)

    asked: list[str] = []  # the same steps again: spaCy sees only the texts of the --sentences library
    real = language.attribute_spans
    monkeypatch.setattr(language, "attribute_spans", lambda texts: asked.extend(texts) or real(texts))
    assert transforms.add_captions(record("k1", "7"), 3, None) == out and asked == []
    assert list(step.process(record("k1", "7"))) == [library] and asked == library["prompt_caption"]
