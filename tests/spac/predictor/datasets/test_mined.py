"""Mined-caption labels: a `spac mine-labels` table reads into splits of said labels (unknown masked, bare values
colour-open, generic items as templates/attribute_datasets/mined.yaml says), validation split off by person."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from spac.attributes import load_schema
from spac.predictor.datasets.mined import load_generic_items, read_mined
from spac.predictor.labels import MASKED, group_label

ROWS = [
    # file_path, id, split, gender, hair, upper, lower, shoes, belongings
    ("a/1.jpg", 1, "train", "man", "black hair", "red t-shirt", "jeans", "unknown", "bag"),
    ("a/2.jpg", 1, "train", "woman", "unknown", "white top", "unknown", "black shoes", "nothing"),
    ("b/3.jpg", 2, "test", "unknown", "long hair", "unknown", "blue skirt", "sneakers", "black backpack"),
]


def _table(path, rows=ROWS, **columns):
    names = ("file_path", "id", "split", "gender", "hair", "upper", "lower", "shoes", "belongings")
    data = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    data["source"] = ["CUHK-PEDES/reid_raw.json"] * len(rows)
    data.update(columns)
    pq.write_table(pa.table(data), path)
    return path


def _images(root, rows=ROWS):
    for row in rows:
        (root / row[0]).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 16)).save(root / row[0])
    return root


def test_a_mined_table_reads_into_said_labels(tmp_path):
    dataset = read_mined(_table(tmp_path / "labels.parquet"), _images(tmp_path / "imgs"), val_fraction=0.5)
    everything = {p.name: labels for s in dataset.splits.values() for p, labels in zip(s.paths, s.labels)}
    first = everything["1.jpg"]
    assert first["gender"] == group_label(["man"], ["none"]) and first["shoes"] is MASKED
    assert first["hair"] == group_label(["short hair", "long hair", "ponytail", "curly hair"], ["black"])
    assert first["upper"] == group_label(["t-shirt"], ["red"]) and first["lower"] == group_label(["jeans"])
    assert first["belongings"] == group_label(["backpack", "handbag", "shoulder bag"])  # mined.yaml's "bag"
    second = everything["2.jpg"]
    assert second["upper"].items == set(load_generic_items()["top"]) and second["upper"].colours == {"white"}
    assert second["belongings"] == group_label(["nothing"], ["none"]) and second["lower"] is MASKED
    assert dataset.split("test").paths == [tmp_path / "imgs" / "b" / "3.jpg"]
    assert dataset.mapping is None and dataset.report["rows"] == 3


def test_without_validation_rows_whole_people_are_split_off(tmp_path):
    rows = [
        (f"p{i // 3}/{i}.jpg", i // 3, "train", "man", "unknown", "unknown", "unknown", "unknown", "unknown")
        for i in range(60)
    ]
    dataset = read_mined(_table(tmp_path / "t.parquet", rows), _images(tmp_path, rows), val_fraction=0.3)
    val_people = {p.parent.name for p in dataset.split("val").paths}
    train_people = {p.parent.name for p in dataset.split("train").paths}
    assert val_people and train_people and not val_people & train_people
    assert len(dataset.split("val")) % 3 == 0


def test_validation_rows_are_kept_as_they_are(tmp_path):
    rows = ROWS[:1] + [("c/4.jpg", 3, "val", "man", "unknown", "unknown", "unknown", "unknown", "unknown")]
    dataset = read_mined(_table(tmp_path / "t.parquet", rows), _images(tmp_path, rows))
    assert [p.name for p in dataset.split("val").paths] == ["4.jpg"] and len(dataset.split("train")) == 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"split": ["train", "dev", "test"]}, "row 1: split 'dev' is not train, val or test"),
        ({"upper": ["red t-shirt", "purple cape", "unknown"]}, "row 1: 'purple cape' is not a value"),
    ],
)
def test_bad_rows_are_one_line_errors(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        read_mined(_table(tmp_path / "t.parquet", **change), _images(tmp_path))


def test_bad_tables_and_missing_images_are_one_line_errors(tmp_path):
    pq.write_table(pa.table({"file_path": ["x"]}), tmp_path / "t.parquet")
    with pytest.raises(ValueError, match="no column 'id'; expected a table of `spac mine-labels`"):
        read_mined(tmp_path / "t.parquet", tmp_path)
    (tmp_path / "bad.parquet").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a readable parquet table"):
        read_mined(tmp_path / "bad.parquet", tmp_path)
    with pytest.raises(ValueError, match="mined labels train: 2 of 2 image files are missing"):
        read_mined(_table(tmp_path / "t.parquet"), tmp_path / "nowhere")


def test_generic_item_meanings_are_validated(tmp_path):
    schema = load_schema()
    assert set(load_generic_items(schema)) == {"hair", "top", "shoes", "bag"}
    path = tmp_path / "mined.yaml"
    path.write_text("generic_items: {hair: [short hair], top: [t-shirt], shoes: [boots], bag: [jeans]}\n")
    with pytest.raises(ValueError, match="generic_items.bag: 'jeans' is not a specific item of group 'belongings'"):
        load_generic_items(schema, path)
    path.write_text("generic_items: {hair: [short hair], top: [t-shirt], shoes: [boots]}\n")
    with pytest.raises(ValueError, match="generic_items.bag: expected the specific items"):
        load_generic_items(schema, path)


@pytest.mark.parametrize(
    "file_path, message",
    [
        ("../outside.jpg", r"labels.parquet: row 1: file name '../outside.jpg' has a '..' part"),
        ("/etc/hostname", r"labels.parquet: row 1: file name '/etc/hostname' is absolute"),
        ("escape/outside.jpg", r"labels.parquet: row 1: file name 'escape/outside.jpg' resolves outside"),
    ],
)
def test_a_file_path_that_leaves_the_image_root_is_refused_in_one_line(tmp_path, file_path, message):
    images = _images(tmp_path / "imgs")
    Image.new("RGB", (8, 16)).save(tmp_path / "outside.jpg")
    (images / "escape").symlink_to(tmp_path)  # a folder link inside the root that leads out of it
    rows = [ROWS[0], (file_path, *ROWS[1][1:]), ROWS[2]]
    with pytest.raises(ValueError, match=message):
        read_mined(_table(tmp_path / "labels.parquet", rows), images, check_images=False)
