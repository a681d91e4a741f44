"""RAP v1 and v2: RAP_annotation.mat files written with scipy under RAP's field names read correctly (partitions,
uncertain labels, .jpg names of .png images, v1's validation split), and bad files are one-line errors."""

import numpy as np
import pytest
import scipy.io
from PIL import Image

from spac.predictor.datasets.rap import read_rap
from spac.predictor.labels import group_label

V2_ATTRIBUTES = [
    "Femal",
    "hs-LongHair",
    "hs-BlackHair",
    "ub-TShirt",
    "ub-ShortSleeve",
    "ub-ColorBlack",
    "ub-Jacket",
    "lb-LongTrousers",
    "lb-Jeans",
    "shoes-Sports",
    "attachment-Backpack",
    "attachment-ShoulderBag",
    "attachment-HandBag",
    "attachment-HandTrunk",
    "attachment-Box",
    "action-Calling",
    "BodyFat",
    "Unheard",
]
V2_DATA = [
    [1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0],  # woman, long black hair, black T-shirt, jeans
    [0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0],  # man, jacket, trousers, backpack
    [2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],  # uncertain gender and sleeves, a box
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
]  # calling, nothing else
NAMES = ["CAM01_2014-02-15_001.jpg", "CAM01_2014-02-15_002.jpg", "CAM02_2014-03-01_003.jpg", "CAM02_2014-03-01_004.jpg"]


def _cells(values):
    return np.array([[v] for v in values], dtype=object)


def _images(root, names, suffix):
    (root / "RAP_dataset").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (10, 30), (i, 0, 0)).save(root / "RAP_dataset" / name.replace(".jpg", suffix))


def _v2(root, data=V2_DATA, partitions=5):
    _images(root, NAMES, ".png")  # RAP v2's images are PNG files, its names say .jpg
    part = np.empty((1, partitions), dtype=object)
    for k in range(partitions):
        order = np.roll(np.arange(1, 5), k)
        part[0, k] = {"train_index": order[:2][None], "val_index": order[2:3][None], "test_index": order[3:][None]}
    annotation = {
        "name": _cells(NAMES),
        "attribute": _cells(V2_ATTRIBUTES),
        "data": np.array(data, dtype=np.uint8),
        "selected_attribute": np.arange(1, 17)[None],
        "partition_attribute": part,
    }
    (root / "RAP_annotation").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / "RAP_annotation" / "RAP_annotation.mat", {"RAP_annotation": annotation})


def test_rap_v2_reads_partition_splits_and_maps_uncertain_labels_to_not_said(tmp_path):
    _v2(tmp_path)
    dataset = read_rap(tmp_path)
    assert dataset.name == "RAP v2" and dataset.report["version"] == 2
    assert [len(dataset.split(s)) for s in ("train", "val", "test")] == [2, 1, 1]
    train = dataset.split("train")
    assert [p.name for p in train.paths] == ["CAM01_2014-02-15_001.png", "CAM01_2014-02-15_002.png"]
    woman, man = train.labels
    assert woman["gender"] == group_label(["woman"]) and woman["hair"] == group_label(
        ["long hair", "ponytail"], ["black"]
    )
    assert woman["upper"] == group_label(["t-shirt", "polo shirt"], ["black"]) and woman["lower"] == group_label(
        ["jeans"]
    )
    assert woman["shoes"] == group_label(["sneakers"])
    assert man["gender"] == group_label(["man"]) and man["upper"] == group_label(["jacket", "coat"])
    assert man["lower"] == group_label(["trousers", "leggings", "sweatpants"])  # long trousers, Jeans = 0
    assert man["belongings"] == group_label(["backpack"])  # the first facet wins over "calling"
    uncertain = dataset.split("val").labels[0]
    assert uncertain["gender"].masked and uncertain["belongings"].masked  # 2 = not said; a box is no SPAC item
    calling = dataset.split("test").labels[0]
    assert calling["belongings"] == group_label(["phone"])
    assert dataset.split("val").bits[0, dataset.mapping.column("Femal")] == -1
    assert dataset.report["ignored_attributes"] == ["Unheard"] and "lb-Shorts" in dataset.report["missing_attributes"]
    assert dataset.report["contradicting_facets"] == 1  # the man's backpack against his calling


def test_rap_partitions_are_chosen_by_number(tmp_path):
    _v2(tmp_path)
    second = read_rap(tmp_path, partition=2)
    assert [p.name for p in second.split("test").paths] == ["CAM02_2014-03-01_003.png"]
    with pytest.raises(ValueError, match="partition 6 asked for, the file has 5"):
        read_rap(tmp_path, partition=6)


def test_rap_v1_reads_and_splits_validation_off_its_training_images(tmp_path):
    names = [f"CAM{i:02d}-2013-{i:03d}.png" for i in range(1, 41)]
    _images(tmp_path, names, ".png")
    attributes = [
        "Female",
        "ub-ShortSleeve",
        "up-Red",
        "low-Blue",
        "lb-LongTrousers",
        "shoes-Sport",
        "shoes-Green",
        "attach-SingleShoulderBag",
        "faceFront",
    ]
    labels = np.zeros((40, len(attributes)), dtype=np.uint8)
    labels[::2, 0] = 1
    labels[:, 1] = 1
    labels[:, 2] = 1
    labels[1, 5:7] = 1  # sneakers in green
    labels[:, 7] = 1
    part = np.empty((1, 5), dtype=object)
    for k in range(5):
        part[0, k] = {"train_index": np.arange(1, 31)[None], "test_index": np.arange(31, 41)[None]}
    annotation = {
        "imagesname": _cells(names),
        "attribute_eng": _cells(attributes),
        "label": labels,
        "partion": part,
        "selected_attribute": np.arange(1, 10)[None],
    }
    scipy.io.savemat(tmp_path / "RAP_annotation.mat", {"RAP_annotation": annotation})
    dataset = read_rap(tmp_path, val_fraction=0.3)
    assert dataset.name == "RAP v1" and len(dataset.split("test")) == 10
    assert len(dataset.split("train")) + len(dataset.split("val")) == 30 and 3 <= len(dataset.split("val")) <= 18
    first = dataset.split("test").labels[0]
    assert first["upper"] == group_label(["t-shirt", "polo shirt", "vest"], ["red"])
    assert first["belongings"] == group_label(["shoulder bag"])
    assert first["lower"].masked  # no long trousers ticked, and no skirt, dress or jeans attribute in this file
    shoes = {p.name: labels["shoes"] for s in dataset.splits.values() for p, labels in zip(s.paths, s.labels)}
    assert shoes[names[1]] == group_label(["sneakers"])  # green is no SPAC shoe colour: left open
    again = read_rap(tmp_path, val_fraction=0.3)
    assert again.split("val").paths == dataset.split("val").paths


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda a: a.pop("data"), "neither v2 fields"),
        (lambda a: a.update(data=np.full((4, 18), 3, dtype=np.uint8)), "values other than 0, 1 and 2"),
        (lambda a: a.pop("partition_attribute"), "no field 'partition_attribute'"),
    ],
)
def test_damaged_rap_files_are_one_line_errors(tmp_path, damage, message):
    _v2(tmp_path)
    raw = scipy.io.loadmat(tmp_path / "RAP_annotation" / "RAP_annotation.mat", squeeze_me=False)["RAP_annotation"][0, 0]
    annotation = {name: raw[name] for name in raw.dtype.names}
    damage(annotation)
    scipy.io.savemat(tmp_path / "RAP_annotation" / "RAP_annotation.mat", {"RAP_annotation": annotation})
    with pytest.raises(ValueError, match=message):
        read_rap(tmp_path)


def test_missing_rap_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="no RAP_annotation.mat"):
        read_rap(tmp_path)
    _v2(tmp_path)
    for image in (tmp_path / "RAP_dataset").iterdir():
        image.unlink()
    with pytest.raises(ValueError, match="cannot find image 'CAM01_2014-02-15_001.jpg' .or its .png"):
        read_rap(tmp_path)
    scipy.io.savemat(tmp_path / "RAP_annotation" / "RAP_annotation.mat", {"other": np.zeros(2)})
    with pytest.raises(ValueError, match="no variable 'RAP_annotation'"):
        read_rap(tmp_path)


# ---- issue 19: hostile releases ---------------------------------------------------------------------------


def _with_test_index(root, value):
    _v2(root)
    raw = scipy.io.loadmat(root / "RAP_annotation" / "RAP_annotation.mat", squeeze_me=False)["RAP_annotation"][0, 0]
    annotation = {name: raw[name] for name in raw.dtype.names}
    part = np.empty((1, 5), dtype=object)
    for k in range(5):
        source = annotation["partition_attribute"][0, k][0, 0]
        part[0, k] = {key: source[key] for key in source.dtype.names}
    part[0, 0]["test_index"] = np.array([[value]])  # partition 1's test image, as MATLAB's double
    annotation["partition_attribute"] = part
    scipy.io.savemat(root / "RAP_annotation" / "RAP_annotation.mat", {"RAP_annotation": annotation})


@pytest.mark.parametrize("value, shown", [(1.7, "1.7"), (np.nan, "nan"), (2.5, "2.5")])
def test_a_fractional_index_is_refused_not_truncated(tmp_path, value, shown):
    _with_test_index(tmp_path, value)
    with pytest.raises(ValueError, match=rf"partition_attribute\(1\).test_index: index {shown} is not a whole number$"):
        read_rap(tmp_path)


def test_a_whole_float_index_still_reads(tmp_path):
    _with_test_index(tmp_path, 2.0)
    assert [p.name for p in read_rap(tmp_path).split("test").paths] == ["CAM01_2014-02-15_002.png"]


def test_rap_image_names_that_leave_the_image_folder_are_refused(tmp_path):
    _v2(tmp_path)
    raw = scipy.io.loadmat(tmp_path / "RAP_annotation" / "RAP_annotation.mat", squeeze_me=False)["RAP_annotation"][0, 0]
    annotation = {name: raw[name] for name in raw.dtype.names}
    annotation["name"] = _cells(NAMES[:3] + ["../../outside.jpg"])
    scipy.io.savemat(tmp_path / "RAP_annotation" / "RAP_annotation.mat", {"RAP_annotation": annotation})
    with pytest.raises(ValueError, match=r"RAP_annotation.name entry 3: file name '../../outside.png' has a '..' part"):
        read_rap(tmp_path)
