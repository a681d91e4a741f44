"""`spac report`: the numbers of the page on a corpus whose numbers are known, what it reads (never every
shard), the command's errors, and the page itself in headless Chromium."""

from __future__ import annotations

import json

import pytest
from fsspec.implementations.local import LocalFileSystem
from PIL import Image

from shards import GROUPS, encode_image, make_sample, write_manifest, write_shard
from spac.cli.main import main
from spac.cli.report import cli_main, gather
from spac.report import reading as report_corpus
from spac.report.stats import LabelAccuracy, mean_pairwise_jaccard, parse_labels, words
from tests.browser import find_chromium
from tests.shards.corpus_factory import make_image, make_record, write_corpus

# Four samples in two shards, with numbers worked out by hand below.
TEXTS = [  # (captions, styles, prompt_caption)
    (["a man in red", "a man in blue"], ["plain", "dense"], ["a man in red"]),
    (["one two"], ["plain"], []),
    (["x y", "x z"], ["plain", "plain"], ["y z w"]),
    ([], [], ["a man in red"]),
]
IDS = [0, 0, 1, 2]
GENDERS = ["woman", "woman", "man", "unknown"]
FILE_PATHS = ["Part1/0/0.jpg", "Part1/0/1.jpg", "Part1/1/2.jpg", "Part1/2/3.jpg"]
SOURCES = ["/raw/00000/000.jpg", "/raw/00000/001.jpg", "/raw/cam/00001/002.jpg", "/raw/00002/003.jpg"]
LETTERS = [
    {"path": "/raw/a.jpg", "stage": "decode", "reason": "not an image"},
    {"path": "/raw/b.jpg", "stage": "decode", "reason": "not an image"},
    {"path": "/raw/c.jpg", "stage": "read", "reason": "unreadable"},
    {"path": "/raw/d.jpg", "stage": "filter", "reason": "gender_vote_failed"},
    {"path": "/raw/e.jpg", "stage": "filter", "reason": "gender_vote_failed"},
    {"path": "/raw/f.jpg", "stage": "filter", "reason": "too_many_unknown"},
]


def _known_record(index: int) -> dict:
    captions, styles, prompt = TEXTS[index]
    record = make_record(
        index,
        key=f"s{index}",
        id=IDS[index],
        file_path=FILE_PATHS[index],
        source=SOURCES[index],
        captions=captions,
        styles=styles,
        prompt_caption=prompt,
    )
    record["attributes"]["gender"]["value"] = GENDERS[index]
    return record


def _labels() -> list[dict]:
    base = make_record(0)["attributes"]
    values = {g: base[g]["value"] for g in GROUPS}
    return [
        {"file_path": "Part1/0/0.jpg", "id": 0, "visible": {**values, "gender": "woman"}},
        {"file_path": "Part1/0/1.jpg", "id": 0, "visible": {**values, "gender": "man", "hair": "unknown"}},
        {"file_path": "00001/002.jpg", "id": 1, "attributes": {**values, "gender": "man"}},
    ]


@pytest.fixture
def known_corpus(tmp_path):
    folder = tmp_path / "corpus"
    samples = [make_sample(_known_record(i), encode_image(make_image(i))) for i in range(4)]
    write_shard(str(folder), 0, samples[:2])
    write_shard(str(folder), 1, samples[2:])
    write_manifest(str(folder))
    (folder / "deadletter.jsonl").write_text("".join(json.dumps(letter) + "\n" for letter in LETTERS))
    (folder / "filter_report.json").write_text(
        json.dumps(
            {
                "thresholds": {"max_unknown": 3},
                "dead_lettered": {"not an image": 2, "unreadable": 1},
                "filtered": {"too_many_unknown": 1, "gender_vote_failed": 2, "too_few_images": 0},
            }
        )
    )
    (folder / "job.json").write_text(json.dumps({"seed": 0, "shard_size": 2, "input": {"root": "/raw"}}))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(line) + "\n" for line in _labels()))
    return folder, labels


def test_words_and_overlap():
    assert words("A man's RED coat, 2 shoes.") == ["a", "man's", "red", "coat", "2", "shoes"]
    assert mean_pairwise_jaccard(["a b", "a c"]) == pytest.approx(1 / 3)
    assert mean_pairwise_jaccard(["only one"]) is None


def test_the_statistics_of_a_corpus_whose_numbers_are_known(known_corpus):
    folder, labels = known_corpus
    report = gather(str(folder), samples=0, labels=parse_labels(labels.read_text().splitlines()))
    counts, texts = report.counts, report.texts
    assert counts.samples == 4 and report.folder.totals["samples"] == 4
    assert dict(counts.attributes["gender"]) == {"woman": 2, "man": 1, "unknown": 1}
    assert dict(counts.attributes["hair"]) == {"long black hair": 4}
    assert dict(counts.texts_per_image) == {3: 2, 1: 2}
    assert dict(counts.styles) == {"plain": 4, "dense": 1, "template": 3}
    assert counts.style_shares() == {"plain": 0.5, "template": 0.375, "dense": 0.125}
    assert sorted(counts.images_per_identity().tolist()) == [1, 1, 2]
    assert texts.texts == 8 and texts.images == 4
    assert dict(texts.lengths) == {4: 4, 2: 3, 3: 1}
    assert texts.mean_words == pytest.approx(25 / 8)
    assert texts.vocabulary_size == 11  # a man in red blue one two x y z w
    assert texts.distinct_texts == 6 and texts.distinct_ratio == pytest.approx(0.75)
    # s0: J(red, blue) = 3/5 twice, J(red, red) = 1; s2: 1/3, 1/4, 1/4; s1 and s3 have one text
    assert texts.jaccard_images == 2
    assert texts.mean_jaccard == pytest.approx(((0.6 + 0.6 + 1) / 3 + (1 / 3 + 1 / 4 + 1 / 4) / 3) / 2)
    assert report.counters == {
        "read": 10,
        "decoded": 7,
        "dead_lettered": 3,
        "filtered": 3,
        "written": 4,
        "dead_lettered_by_reason": {("decode", "not an image"): 2, ("read", "unreadable"): 1},
        "filtered_by_reason": {"too_many_unknown": 1, "gender_vote_failed": 2, "too_few_images": 0},
    }
    accuracy = report.accuracy
    assert (accuracy.matched, accuracy.unmatched) == (3, 1)
    per = accuracy.per_group()
    assert per["gender"]["accuracy"] == pytest.approx(2 / 3)
    assert per["hair"] == {"accuracy": pytest.approx(2 / 3), "known": 2, "accuracy_known": 1.0, "said_unknown": 0}
    assert per["upper"]["accuracy"] == 1.0


def test_the_page_shows_the_numbers(known_corpus, tmp_path):
    folder, labels = known_corpus
    page = tmp_path / "out" / "page.html"
    assert cli_main([str(folder), "--output", str(page), "--samples", "4", "--labels", str(labels), "--quiet"]) == 0
    text = page.read_text()
    for expected in (
        '<td>read</td><td class="n">10</td>',
        '<td>vocabulary size (distinct words)</td><td class="n">11</td>',
        '<td>distinct-text ratio</td><td class="n">0.750</td>',
        "gender_vote_failed",
        "shard_size",
        "Attributes against labels",
        "Contact sheet",
        "a man in blue",
    ):
        assert expected in text, expected
    assets = sorted(p.name for p in (tmp_path / "out" / "page_files").iterdir())
    assert len([a for a in assets if a.endswith(".jpg")]) == 4
    assert {
        "attributes.png",
        "caption_lengths.png",
        "texts_per_image.png",
        "styles.png",
        "word_overlap.png",
        "images_per_identity.png",
        "label_accuracy.png",
    } <= set(assets)
    for name in assets:  # every src of the page is one of its files
        assert f'src="page_files/{name}"' in text


def test_the_contact_sheet_is_deterministic_and_holds_the_records(tmp_path):
    samples = write_corpus(str(tmp_path / "c"), shards=5, per_shard=4)
    first = gather(str(tmp_path / "c"), samples=6, seed=3)
    again = gather(str(tmp_path / "c"), samples=6, seed=3)
    other = gather(str(tmp_path / "c"), samples=6, seed=4)
    keys = [s.key for s in first.samples]
    assert keys == [s.key for s in again.samples] and len(set(keys)) == 6 and keys == sorted(keys)
    assert keys != [s.key for s in other.samples]
    by_key = {s["__key__"]: s for s in samples}
    for sample in first.samples:
        assert sample.record == by_key[sample.key]["json"] and sample.jpg == by_key[sample.key]["jpg"]
    assert [s.key for s in gather(str(tmp_path / "c"), samples=100).samples] == sorted(by_key)


def test_choose_samples_spans_every_shard_and_skips_empty_ones():
    assert report_corpus.choose_samples([2, 0, 3], 5, seed=0) == [(0, 0), (0, 1), (2, 0), (2, 1), (2, 2)]
    picks = report_corpus.choose_samples([10] * 50, 20, seed=1)
    assert len(set(picks)) == 20 and len({s for s, _ in picks}) > 5
    chosen = report_corpus.choose_shards([5] * 10, 15, seed=0)
    assert chosen == report_corpus.choose_shards([5] * 10, 15, seed=0) and len(chosen) == 3
    assert report_corpus.choose_shards([5, 5, 5], 15, seed=0) == [0, 1, 2]
    assert len(report_corpus.choose_shards([50, 50], 10, seed=0)) == 1  # at least one shard


def test_it_never_reads_every_shard(tmp_path, monkeypatch):
    write_corpus(str(tmp_path / "c"), shards=12, per_shard=3)
    opened = []
    original = LocalFileSystem._open

    def recording(self, path, *args, **kwargs):
        opened.append(str(path))
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "_open", recording)
    report = gather(str(tmp_path / "c"), samples=2, seed=0, text_samples=12)
    tars = {p for p in opened if p.endswith(".tar")}
    assert len(report.samples) == 2 and 1 <= len(tars) <= 2
    assert len({p for p in opened if p.endswith(".parquet")}) == 12  # every index, a few columns
    assert report.text_shards == 4 and report.texts.images == 12  # text statistics from 4 indexes
    assert report.counts.samples == 36  # counts from all of them


def test_a_damaged_sample_is_listed_not_fatal(tmp_path):
    write_corpus(str(tmp_path / "c"), shards=1, per_shard=4)
    tar = tmp_path / "c" / "synthpedes-000000.tar"
    data = bytearray(tar.read_bytes())
    data[600:640] = b"\0" * 40  # inside the first sample's JPEG
    tar.write_bytes(bytes(data))
    report = gather(str(tmp_path / "c"), samples=4)
    assert len(report.samples) == 3 and len(report.problems) == 1 and "sha256" in report.problems[0]


def test_a_remote_corpus(tmp_path):
    url = "memory://report-test/corpus"
    write_corpus(url, shards=2, per_shard=3)
    try:
        report = gather(url, samples=2)
        assert report.counts.samples == 6 and len(report.samples) == 2
    finally:
        import fsspec

        fsspec.filesystem("memory").rm("/report-test", recursive=True)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert main(["report", str(tmp_path), "--output", str(tmp_path / "x.png")]) == 2
    (tmp_path / "labels.jsonl").write_text('{"file_path": "a.jpg"}\n')
    write_corpus(str(tmp_path / "c"), shards=1, per_shard=2)
    assert (
        main(
            [
                "report",
                str(tmp_path / "c"),
                "--labels",
                str(tmp_path / "labels.jsonl"),
                "--output",
                str(tmp_path / "r.html"),
            ]
        )
        == 2
    )
    assert main(["report", str(tmp_path / "c"), "--samples", "-1"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(errors) == 4 and all(line.startswith("spac report: error: ") for line in errors), errors
    assert "line 1" in errors[2]


def test_an_earlier_report_is_replaced_and_a_foreign_folder_refused(tmp_path):
    write_corpus(str(tmp_path / "c"), shards=1, per_shard=3)
    page = tmp_path / "r.html"
    assert cli_main([str(tmp_path / "c"), "--output", str(page), "--samples", "3", "--quiet"]) == 0
    assert cli_main([str(tmp_path / "c"), "--output", str(page), "--samples", "1", "--quiet"]) == 0
    assert len(list((tmp_path / "r_files").glob("*.jpg"))) == 1
    (tmp_path / "r_files" / "notes.txt").write_text("mine")
    assert main(["report", str(tmp_path / "c"), "--output", str(page)]) == 2


def test_label_accuracy_matches_by_source_suffix():
    accuracy = LabelAccuracy({"00001/002.jpg": {g: "unknown" for g in GROUPS}})
    accuracy.add("Part1/1/2.jpg", "/raw/cam/00001/002.jpg", ",".join(["unknown"] * 6))
    accuracy.add("Part1/1/3.jpg", "/raw/cam/00001/003.jpg", ",".join(["unknown"] * 6))
    assert (accuracy.matched, accuracy.unmatched) == (1, 1) and accuracy.mean_accuracy() == 1.0


# ---- the page in a real browser ------------------------------------------------------------------------

needs_chromium = pytest.mark.skipif(
    find_chromium() is None, reason="chromium is not installed (Debian package `chromium`; .ci/run installs it)"
)


@needs_chromium
def test_the_page_renders_in_headless_chromium(known_corpus, tmp_path):
    from tests.browser import check_page

    folder, labels = known_corpus
    page = tmp_path / "site" / "report.html"
    assert cli_main([str(folder), "--output", str(page), "--samples", "4", "--labels", str(labels), "--quiet"]) == 0
    check = check_page(page, tmp_path / "shot.png")
    assert check.console_errors == []
    assert len(check.images) == 4 + 7  # thumbnails + plots
    assert check.broken_images == [] and check.broken_marker == "0"
    assert all(i["naturalWidth"] > 0 and i["naturalHeight"] > 0 for i in check.images)
    with Image.open(check.screenshot) as shot:
        assert shot.size == check.size and shot.width == 1280 and shot.height > 1000
        assert len(shot.convert("RGB").resize((64, 64)).getcolors(4096) or []) > 20  # not a blank page


@needs_chromium
def test_the_browser_check_sees_a_broken_image(tmp_path):
    from tests.browser import check_page

    write_corpus(str(tmp_path / "c"), shards=1, per_shard=2)
    page = tmp_path / "report.html"
    assert cli_main([str(tmp_path / "c"), "--output", str(page), "--samples", "2", "--quiet"]) == 0
    (tmp_path / "report_files" / "styles.png").unlink()
    check = check_page(page, tmp_path / "shot.png")
    assert [i["src"] for i in check.broken_images] == ["report_files/styles.png"]
    assert check.broken_marker == "1"
    assert any("styles.png" in error for error in check.console_errors), check.console_errors


def test_an_imported_record_shows_no_confidence_and_marks_out_of_schema_values():
    from spac.report.page import sheet_card
    from spac.report.reading import SheetSample

    record = make_record(0)
    record["attributes"] = {g: {"value": "unknown", "confidence": None, "in_schema": True} for g in GROUPS}
    record["attributes"]["upper"] = {"value": "a <b>shiny</b> cape", "confidence": None, "in_schema": False}
    card = sheet_card(SheetSample("k", "s.tar", record, b""), "page_files", "0000-k.jpg")
    assert "a &lt;b&gt;shiny&lt;/b&gt; cape *" in card and "<b>" not in card
    assert card.count('<span class="conf">—</span>') == 6
    assert card.count('<span class="style">') == 3 and '<span class="style">template</span>' in card


def test_a_folder_without_manifest_and_a_broken_stats_file_is_one_line(known_corpus, tmp_path, capsys):
    folder, _ = known_corpus
    (folder / "manifest.json").unlink()  # the report then reads the shards' completion markers
    (folder / "synthpedes-000001_stats.json").write_text('{"shard": "synthpedes-000001.tar"}')
    assert main(["report", str(folder), "--output", str(tmp_path / "r.html")]) == 2
    [error] = [line for line in capsys.readouterr().err.splitlines() if line]
    assert error.startswith("spac report: error: ") and "synthpedes-000001_stats.json" in error


MATHTEXT = "$\\undefinedmacro{x}$ shirt"  # accepted by the importer, kept verbatim as out-of-schema


def test_an_attribute_value_that_reads_as_mathtext_is_drawn_as_it_is(tmp_path):
    folder = tmp_path / "corpus"
    records = [make_record(i, key=f"s{i}", captions=["a $x$ caption"], styles=["$\\frac{$"]) for i in range(2)]
    for record in records:
        record["attributes"]["upper"]["value"] = MATHTEXT
    write_shard(str(folder), 0, [make_sample(r, encode_image(make_image(i))) for i, r in enumerate(records)])
    write_manifest(str(folder))
    page = tmp_path / "out" / "page.html"
    assert cli_main([str(folder), "--output", str(page), "--samples", "2", "--quiet"]) == 0
    assert "$\\undefinedmacro{x}$ shirt" in page.read_text()
    assert (tmp_path / "out" / "page_files" / "attributes.png").stat().st_size > 0


@pytest.mark.parametrize("label", [MATHTEXT, "$$", "$a^{$", "\\", "$\\$", "50% $5 & $6"])
def test_every_plot_draws_a_label_literally(tmp_path, label):
    from collections import Counter

    from spac.report import page

    page.plot_attributes({"upper": Counter({label: 3, "shirt": 1})}, tmp_path / "a.png")
    page.plot_shares({label: 0.5}, tmp_path / "s.png", label)
    page.plot_counts({1: 2}, tmp_path / "c.png", label, label, label, by={label: Counter({1: 2})})
    page.plot_histogram([0.5], tmp_path / "h.png", label, label)
    assert all((tmp_path / f"{n}.png").stat().st_size > 0 for n in "asch")


@pytest.mark.parametrize(
    "part, expected",
    [
        (None, None),  # a template corpus, or one written before the stage
        ("not an object", None),
        ({"counters": [1], "rejected_examples": {"gender": "x"}}, {"counters": {}, "rejected_examples": []}),
        (
            {
                "counters": {"mllm_kept": 3},
                "rejected_examples": {"markup": [{"key": "k", "style": "mllm:s", "text": "<b>"}, 7]},
            },
            {"counters": {"mllm_kept": 3}, "rejected_examples": [("markup", "k", "mllm:s", "<b>")]},
        ),
    ],
)
def test_the_caption_model_part_of_the_filter_report_reads_malformed_parts_as_empty(part, expected):
    report = {"filtered": {}} if part is None else {"filtered": {}, "caption_model": part}
    folder = report_corpus.CorpusFolder("c", None, "c", [], {}, True, filter_report=report)
    assert report_corpus.caption_model_report(folder) == expected
