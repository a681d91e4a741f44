"""pipelines.synthesis.inputs: folder layout, keys, manifests, webdataset shards, LUPerson-NL, input kinds."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import InputError
from pipelines.synthesis.inputs import (
    ImageRef,
    InputSpec,
    ShardSample,
    detect_format,
    luperson_nl_ref,
    read_image_list,
    ref_from_path,
    resolve_input,
    shard_paths,
    shard_samples,
    webdataset_ref,
)
from shards.keys import make_key
from tests.pipelines.step_helpers import write_tar


def test_ref_from_path_reads_the_layout(tmp_path):
    root = str(tmp_path)
    assert ref_from_path(root, f"{root}/Part1/7/1.jpg") == ImageRef(
        f"{root}/Part1/7/1.jpg", "Part1/7/1.jpg", "Part1/7", "Part1_7_1"
    )
    assert ref_from_path(root, f"{root}/7/1.jpg").identity == "7"
    assert "layout" in ref_from_path(root, f"{root}/a/b/c/d.jpg")


def test_resolve_input(tmp_path):
    assert resolve_input(str(tmp_path)).pattern == f"{tmp_path}/**"
    glob = resolve_input(f"{tmp_path}/Part*/*/*.jpg")
    assert glob.root == str(tmp_path) and glob.pattern.endswith("Part*/*/*.jpg")
    with pytest.raises(InputError, match="does not exist"):
        resolve_input(str(tmp_path / "missing"))
    with pytest.raises(InputError, match="manifest"):
        resolve_input(str(tmp_path / "missing.csv"))


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_manifest_formats(tmp_path, suffix):
    rows = [{"path": "imgs/0.jpg", "identity": "17"}, {"path": "/abs/x/5.jpg", "identity": "3"}]
    path = tmp_path / f"list.{suffix}"
    if suffix == "csv":
        path.write_text("path,identity\n" + "".join(f"{r['path']},{r['identity']}\n" for r in rows))
    elif suffix == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    refs = read_image_list(str(path))
    assert [(r.source, r.file_path, r.identity) for r in refs] == [
        (f"{tmp_path}/imgs/0.jpg", "imgs/0.jpg", "17"),
        ("/abs/x/5.jpg", "3/5.jpg", "3"),
    ]


def test_manifest_without_identity_is_refused(tmp_path):
    path = tmp_path / "list.jsonl"
    path.write_text('{"path": "a.jpg"}\n')
    with pytest.raises(InputError, match="row 1"):
        read_image_list(str(path))


def test_manifest_rows_stored_under_one_file_path_are_refused(tmp_path):
    path = tmp_path / "list.jsonl"
    rows = [
        {"path": "/a/x/1.jpg", "identity": "3"},
        {"path": "/a/x/1.jpg", "identity": "3"},
        {"path": "/b/x/1.jpg", "identity": "3"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(InputError, match="row 3: /b/x/1.jpg would be stored as 3/1.jpg"):
        read_image_list(str(path))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert len(read_image_list(str(path))) == 1  # the same row twice is one image


def _manifest(tmp_path, rows):
    path = tmp_path / "list.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    "row",
    [
        {"path": "../outside/1.jpg", "identity": "1"},
        {"path": "a/../../1.jpg", "identity": "1"},
        {"path": "/abs/1.jpg", "identity": "../../etc"},
    ],
)
def test_manifest_rows_that_would_leave_the_corpus_root_are_refused(tmp_path, row):
    with pytest.raises(InputError, match="row 1: .*outside the corpus root"):
        read_image_list(_manifest(tmp_path, [row]))


def test_manifest_paths_are_normalised_so_one_file_is_one_image(tmp_path):
    refs = read_image_list(
        _manifest(tmp_path, [{"path": "a/1.jpg", "identity": "a"}, {"path": "x/../a/./1.jpg", "identity": "a"}])
    )
    assert [(r.file_path, r.key) for r in refs] == [("a/1.jpg", "a_1")]


def test_a_plain_file_that_is_not_a_manifest_is_refused(tmp_path):
    (tmp_path / "images.txt").write_text("a.jpg\n")
    with pytest.raises(InputError, match="is a file but not a manifest"):
        resolve_input(str(tmp_path / "images.txt"))


# --- webdataset and LUPerson-NL inputs -------------------------------------------------------------------


def test_folder_and_manifest_specs_keep_their_fields(tmp_path):
    """New InputSpec fields stay None for the old kinds, so their job.json fingerprint is unchanged."""
    assert {k for k, v in resolve_input(str(tmp_path))._asdict().items() if v is not None} == {"root", "pattern"}
    (tmp_path / "list.csv").write_text("path,identity\n")
    assert resolve_input(str(tmp_path / "list.csv"), "manifest").format is None


@pytest.mark.parametrize(
    "location, expected",
    [
        ("shards/{00000..00009}.tar", "webdataset"),
        ("gs://b/s/{0,1}.tar", "webdataset"),
        ("one.tar", "webdataset"),
        ("shards/*.tar", "webdataset"),
        ("imgs/*/*.jpg", "folder"),
        ("list.jsonl", "manifest"),
        ("gs://b/any-folder", "folder"),
    ],
)
def test_detect_format_by_name(location, expected):
    assert detect_format(location) == expected


def test_detect_format_by_a_local_folders_contents(tmp_path):
    (tmp_path / "wds").mkdir()
    write_tar(tmp_path / "wds" / "00000.tar", [])
    assert detect_format(str(tmp_path / "wds")) == "webdataset"
    (tmp_path / "lup" / "CN" / "Beijing" / "v1").mkdir(parents=True)
    (tmp_path / "lup" / "CN" / "Beijing" / "v1" / "000003_0000100_01.jpg").write_bytes(b"x")
    assert detect_format(str(tmp_path / "lup")) == "luperson_nl"
    (tmp_path / "ids" / "Part1" / "7").mkdir(parents=True)
    (tmp_path / "ids" / "Part1" / "7" / "1.jpg").write_bytes(b"x")
    assert detect_format(str(tmp_path / "ids")) == "folder"


def test_webdataset_specs_and_their_checks(tmp_path):
    write_tar(tmp_path / "a-000.tar", [])
    spec = resolve_input(str(tmp_path / "a-{000..002}.tar"), identity_field="person")
    assert spec == InputSpec(
        str(tmp_path), str(tmp_path / "a-{000..002}.tar"), format="webdataset", identity_field="person"
    )
    assert resolve_input(str(tmp_path), "webdataset", identity_pattern="^(.)").pattern == f"{tmp_path}/*.tar"
    with pytest.raises(InputError, match="needs one of --identity_field"):
        resolve_input(str(tmp_path / "a-000.tar"))
    with pytest.raises(InputError, match="not both"):
        resolve_input(str(tmp_path / "a-000.tar"), identity_field="x", identity_pattern="(x)")
    with pytest.raises(InputError, match="exactly one capturing group"):
        resolve_input(str(tmp_path / "a-000.tar"), identity_pattern=r"^\d+_")
    with pytest.raises(InputError, match="not a regular expression"):
        resolve_input(str(tmp_path / "a-000.tar"), identity_pattern="(")
    with pytest.raises(InputError, match="no .tar shard found"):
        resolve_input(str(tmp_path / "b-{0..3}.tar"), identity_field="x")
    with pytest.raises(InputError, match="applies to a webdataset input only"):
        resolve_input(str(tmp_path), "folder", identity_field="x")
    with pytest.raises(InputError, match="--input_format"):
        resolve_input(str(tmp_path), "tfrecord")


def test_shard_paths_expand_braces_and_globs(tmp_path):
    for name in ("s-1.tar", "s-0.tar", "t-0.tar"):
        write_tar(tmp_path / name, [])
    assert shard_paths(str(tmp_path / "{s,t}-*.tar")) == [str(tmp_path / n) for n in ("s-0.tar", "s-1.tar", "t-0.tar")]
    assert shard_paths(str(tmp_path / "s-{1..2}.tar")) == [str(tmp_path / "s-1.tar"), str(tmp_path / "s-2.tar")]


def test_shard_samples_read_only_wanted_members_within_the_bound(tmp_path):
    path = write_tar(
        tmp_path / "s.tar",
        [
            ("a.jpg", b"J" * 10),
            ("a.txt", b"T" * 1000),
            ("a.json", b"{}"),
            ("dir/b.seg.png", b"S"),
            ("dir/b.PNG", b"P" * 50),
            ("__meta__", b"m"),
            ("c.json", b"{}"),
        ],
    )
    with open(path, "rb") as stream:
        samples = list(shard_samples(stream, ("jpg", "png", "json"), max_bytes=20))
    assert samples == [
        ShardSample("a", {"jpg": b"J" * 10, "json": b"{}"}, {}),
        ShardSample("dir/b", {}, {"png": "member 'dir/b.PNG' is larger than 20 bytes"}),
        ShardSample("c", {"json": b"{}"}, {}),
    ]


def test_shard_samples_refuse_a_cutwrite_tar(tmp_path):
    data = write_tar(tmp_path / "s.tar", [("a.jpg", b"J" * 600), ("b.jpg", b"K" * 600)]).read_bytes()
    with pytest.raises(tarfile.TarError):
        list(shard_samples(io.BytesIO(data[:1536]), ("jpg",), 10_000))  # ends after a's data: no end block
    read = []
    with pytest.raises(tarfile.TarError):
        for sample in shard_samples(io.BytesIO(data[:1536]), ("jpg",), 10_000):
            read.append(sample)
    assert read == [ShardSample("a", {"jpg": b"J" * 600}, {})]  # the whole sample before the cut is kept


def test_shard_samples_read_members_named_like_tar_c_dot(tmp_path):
    path = write_tar(tmp_path / "s.tar", [("./a.jpg", b"J"), ("./a.json", b"{}")])
    with open(path, "rb") as stream:
        assert list(shard_samples(stream, ("jpg", "json"), 100)) == [ShardSample("a", {"jpg": b"J", "json": b"{}"}, {})]


@pytest.mark.parametrize(
    "members, expected",
    [
        ({"jpg": b"J", "json": b'{"pid": 12}'}, ("12/k1.jpg", "12")),
        ({"webp": b"W", "png": b"P", "json": b'{"pid": "x"}'}, ("x/k1.png", "x")),
        ({"json": b'{"pid": 1}'}, "no image member"),
        ({"jpg": b"J", "json": b'{"pid": true}'}, "no identity field 'pid'"),
        ({"jpg": b"J", "json": b'{"pid": " "}'}, "no identity field 'pid'"),
        ({"jpg": b"J", "json": b"[1]"}, "no identity field 'pid'"),
        ({"jpg": b"J", "json": b"\xff"}, "not valid UTF-8 JSON"),
        ({"jpg": b"J"}, "no json member"),
        ({"jpg": b"J", "json": b'{"pid": "a/./b"}'}, "'..' path part"),
    ],
)
def test_webdataset_ref_from_a_json_field(members, expected):
    spec = InputSpec("/s", "/s/*.tar", format="webdataset", identity_field="pid")
    ref = webdataset_ref("/s/0.tar", ShardSample("k1", members, {}), spec)
    if isinstance(expected, str):
        assert isinstance(ref, str) and expected in ref
    else:
        assert (ref.file_path, ref.identity, ref.source, ref.key) == (*expected, "/s/0.tar#k1", make_key(expected[0]))
        assert ref.data == members[expected[0].rsplit(".", 1)[1]]


def test_luperson_nl_ref():
    ref = luperson_nl_ref("/lup", "/lup/CN/Beijing/abc/000042_0001000_03.jpg")
    assert (ref.file_path, ref.identity, ref.data) == (
        "CN/Beijing/abc/000042_0001000_03.jpg",
        "CN/Beijing/abc/000042",
        None,
    )
    assert "crop name" in luperson_nl_ref("/lup", "/lup/CN/Beijing/abc/1.jpg")
    assert "layout" in luperson_nl_ref("/lup", "/lup/000042_0001000_03.jpg")
