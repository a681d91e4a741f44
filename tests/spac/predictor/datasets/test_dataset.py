"""The readers' shared parts: labelled splits read images when indexed, stable hashed splits, file finding."""

import numpy as np
import pytest
from PIL import Image

from spac.predictor.datasets.dataset import (
    AttributeDataset,
    LabelledSplit,
    aligned_bits,
    check_files,
    first_existing,
    hashed_split,
    image_folder,
    image_paths,
    load_image,
    split_off,
)
from spac.predictor.datasets.mapping import load_mapping
from spac.predictor.labels import group_label


def _split(tmp_path, n=4):
    paths = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        Image.new("L", (4, 8), 10 * i).save(path)
        paths.append(path)
    labels = [{"gender": group_label(["man" if i % 2 else "woman"])} for i in range(n)]
    return LabelledSplit("train", paths, labels, np.arange(n * 2, dtype=np.int8).reshape(n, 2))


def test_a_split_reads_its_images_as_rgb_when_indexed_and_subsets_keep_everything_aligned(tmp_path):
    split = _split(tmp_path)
    image, labels = split[3]
    assert image.mode == "RGB" and image.getpixel((0, 0)) == (30, 30, 30) and labels == split.labels[3]
    part = split.subset([3, 1], "val")
    assert (
        part.name == "val" and part.paths == [split.paths[3], split.paths[1]] and part.bits.tolist() == [[6, 7], [2, 3]]
    )
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        LabelledSplit("x", split.paths, split.labels[:3])


def test_unreadable_images_are_one_line_errors(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"no image")
    with pytest.raises(ValueError, match="bad.png: cannot read image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(ValueError, match="missing.png: no such image file"):
        load_image(tmp_path / "missing.png")


def test_hashed_splits_are_stable_and_near_their_shares(tmp_path):
    shares = {"train": 0.5, "val": 0.1, "test": 0.4}
    sides = [hashed_split(f"person{i}", shares, "salt") for i in range(4000)]
    assert sides == [hashed_split(f"person{i}", shares, "salt") for i in range(4000)]
    assert abs(sides.count("train") / 4000 - 0.5) < 0.03 and abs(sides.count("val") / 4000 - 0.1) < 0.02
    assert sides != [hashed_split(f"person{i}", shares, "other salt") for i in range(4000)]


def test_split_off_moves_whole_people_to_validation(tmp_path):
    split = _split(tmp_path, 8)
    keys = ["a", "a", "b", "b", "c", "c", "d", "d"]
    train, val = split_off(split, keys, 0.5, "x")
    assert len(train) + len(val) == 8 and {p.stem for p in train.paths}.isdisjoint({p.stem for p in val.paths})
    for part in (train, val):
        people = {keys[int(p.stem)] for p in part.paths}
        assert sum(keys.count(k) for k in people) == len(part)  # a person is on one side only
    with pytest.raises(ValueError, match="validation fraction must be between 0 and 1"):
        split_off(split, keys, 1.0, "x")


def test_finding_files_and_folders(tmp_path):
    (tmp_path / "annotation").mkdir()
    (tmp_path / "annotation" / "a.mat").write_bytes(b"")
    assert first_existing(tmp_path, ["a.mat", "annotation/a.mat"], "annotation") == tmp_path / "annotation" / "a.mat"
    with pytest.raises(ValueError, match="no annotation file .looked for b.mat"):
        first_existing(tmp_path, ["b.mat"], "annotation file")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "1.png").write_bytes(b"")
    assert image_folder(tmp_path, ["release", "data"], "1.png") == tmp_path / "data"
    with pytest.raises(ValueError, match="cannot find image '2.png' in any of release, data"):
        image_folder(tmp_path, ["release", "data"], "2.png")
    with pytest.raises(ValueError, match="toy: 1 of 2 image files are missing, e.g. .*2.png"):
        check_files([tmp_path / "data" / "1.png", tmp_path / "data" / "2.png"], "toy")


def test_aligned_bits_follow_the_mapping_order_and_report_foreign_columns():
    mapping = load_mapping("pa100k")
    labels = np.array([[1, 0, 1]])
    bits, ignored = aligned_bits(labels, ["boots", "Shoe size", "Female"], mapping, "x")
    assert ignored == ["Shoe size"] and bits[0, mapping.column("boots")] == 1 and bits[0, mapping.column("Female")] == 1
    assert (bits == -1).sum() == len(mapping.attributes) - 2


def test_a_dataset_names_its_missing_splits(tmp_path):
    dataset = AttributeDataset("Toy", tmp_path, None, {"train": _split(tmp_path)})
    assert dataset.split("train").name == "train"
    with pytest.raises(ValueError, match="Toy at .* has no 'val' split .it has train"):
        dataset.split("val")


def test_images_decode_through_the_shared_policy(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.png")  # would block open() forever
    with pytest.raises(ValueError, match=r"fifo.png: cannot read image \(is a FIFO, not an image\)$"):
        load_image(tmp_path / "fifo.png")
    Image.fromarray(np.full((8, 4), 32896, dtype=np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey
    assert load_image(tmp_path / "deep.png").getpixel((0, 0)) == (128, 128, 128)  # not clipped to white
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png", optimize=True)
    with pytest.raises(ValueError, match=r"bomb.png: cannot read image \(image too large"):
        load_image(tmp_path / "bomb.png")


def test_image_paths_keep_every_name_inside_its_folder(tmp_path):
    assert image_paths(tmp_path, ["a.png", "sub/b.png"], "x") == [tmp_path / "a.png", tmp_path / "sub" / "b.png"]
    with pytest.raises(ValueError, match=r"^labels.mat: names entry 1: file name '../a.png' has a '..' part"):
        image_paths(tmp_path, ["a.png", "../a.png"], "labels.mat: names entry")
