"""PETA: per-subset Label.txt files and image files written here read correctly (ids as numbers, alias spellings,
foreign names ignored, every image of a person in one split), and bad folders are one-line errors."""

import pytest
from PIL import Image

from spac.predictor.datasets.mapping import load_mapping
from spac.predictor.datasets.peta import person_key, read_label_file, read_peta, subset_folders
from spac.predictor.labels import group_label

LABELS = {
    "CUHK": "0001 personalMale hairShort hairBlack upperBodyBlack upperBodyShortSleeve upperBodyTshirt lowerBodyJeans "
    "lowerBodyBlue footwearSneakers footwearWhite carryingBackpack personalLess30\n"
    "0002 personalFemale hairLong hairYellow upperBodyRed upperBodyWhite upperBodyLongSleeve "
    "lowerBodyShortSkirt footwearYellow carryingOther sparkles\n",
    "VIPeR": "7.png personalMale upperBodyNoSleeve lowerBodyShorts carryingNothing footwearSandals footwearBrown\n\n",
}
IMAGES = {"CUHK": ["0001_1.png", "1_2.png", "0002.bmp", "0003_1.png"], "VIPeR": ["007_a.jpg", "7_b.jpg"]}


def _peta(root):
    for subset, text in LABELS.items():
        archive = root / "PETA dataset" / subset / "archive"
        archive.mkdir(parents=True)
        (archive / "Label.txt").write_text(text)
        for name in IMAGES[subset]:
            Image.new("RGB", (12, 30)).save(archive / name)
    return root


def test_person_keys_compare_ids_as_numbers():
    assert person_key("0012_3_FRAME_2.bmp") == "12" == person_key("12.png") == person_key("012")
    assert person_key("abc_1.png") == "abc"


def test_a_peta_release_reads_every_labelled_image_with_its_persons_labels(tmp_path):
    dataset = read_peta(_peta(tmp_path))
    assert dataset.name == "PETA" and dataset.report["subsets"] == ["CUHK", "VIPeR"]
    assert dataset.report["ignored_attributes"] == ["sparkles"] and dataset.report["images_without_labels"] == 1
    by_name = {
        p.name: (labels, bits)
        for split in dataset.splits.values()
        for p, labels, bits in zip(split.paths, split.labels, split.bits)
    }
    assert set(by_name) == {"0001_1.png", "1_2.png", "0002.bmp", "007_a.jpg", "7_b.jpg"}
    man, bits = by_name["0001_1.png"]
    assert man["gender"] == group_label(["man"]) and man["hair"] == group_label(["short hair"], ["black"])
    assert man["upper"] == group_label(["t-shirt"], ["black"])  # short sleeve and T-shirt intersected
    assert man["lower"] == group_label(["jeans"], ["blue", "navy"])
    assert man["shoes"] == group_label(["sneakers"], ["white"])  # "footwearSneakers" is an alias
    assert man["belongings"] == group_label(["backpack"])
    mapping = dataset.mapping
    assert bits[mapping.column("personalLess30")] == 1 and bits[mapping.column("personalFemale")] == 0
    woman, _ = by_name["0002.bmp"]
    assert woman["hair"] == group_label(["long hair", "ponytail"], ["blond"])
    assert woman["upper"].colours == {"red", "white"} and woman["upper"].items == {
        "shirt",
        "jacket",
        "coat",
        "sweater",
        "hoodie",
        "blouse",
        "down jacket",
    }
    assert woman["lower"] == group_label(["skirt", "dress"]) and woman["shoes"].masked  # yellow shoes: no SPAC colour
    assert woman["belongings"].masked  # "other" belongings say nothing
    viper, _ = by_name["7_b.jpg"]
    assert viper["upper"] == group_label(["vest"]) and viper["shoes"] == group_label(["sandals"], ["brown", "beige"])
    assert viper["belongings"] == group_label(["nothing"])


def test_a_persons_images_share_one_split(tmp_path):
    dataset = read_peta(_peta(tmp_path))
    side = {p.name: name for name, split in dataset.splits.items() for p in split.paths}
    assert side["0001_1.png"] == side["1_2.png"] and side["007_a.jpg"] == side["7_b.jpg"]
    assert set(dataset.splits) == {"train", "val", "test"}


def test_the_peta_folder_may_be_given_directly(tmp_path):
    _peta(tmp_path)
    assert [f.name for f in subset_folders(tmp_path / "PETA dataset")] == ["CUHK", "VIPeR"]


def test_bad_peta_folders_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="no PETA subset folders"):
        read_peta(tmp_path)
    archive = tmp_path / "X" / "archive"
    archive.mkdir(parents=True)
    (archive / "Label.txt").write_text("1 personalMale\n01 personalFemale\n")
    with pytest.raises(ValueError, match=r"Label.txt:2: person '01' is labelled twice"):
        read_label_file(archive / "Label.txt", load_mapping("peta"))
    (archive / "Label.txt").write_text("1 personalMale\n")
    with pytest.raises(ValueError, match="no PETA image matches a Label.txt id"):
        read_peta(tmp_path)
    (archive / "Label.txt").write_bytes(b"1 \xff\n")
    with pytest.raises(ValueError, match="not UTF-8 text"):
        read_peta(tmp_path)


def test_an_image_symlinked_from_outside_the_folder_is_refused(tmp_path):
    archive = _peta(tmp_path / "peta") / "PETA dataset" / "CUHK" / "archive"
    Image.new("RGB", (12, 30)).save(tmp_path / "secret.png")
    (archive / "0001_9.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(ValueError, match=r"file name '0001_9.png' resolves outside .*archive"):
        read_peta(tmp_path / "peta")
