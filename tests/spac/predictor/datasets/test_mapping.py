"""Dataset mappings: the bundled files load and account for every attribute; bits -> labels (any-of, otherwise,
not said, unrepresentable, contradictions) and SPAC values -> bits agree; malformed files are one-line errors."""

import re

import numpy as np
import pytest
import yaml

from spac.attributes import UNKNOWN, load_schema
from spac.predictor.datasets.mapping import BUNDLED, MappingError, load_mapping, parse_mapping
from spac.predictor.labels import NO_COLOUR, candidates, group_label


@pytest.fixture(scope="module")
def schema():
    return load_schema()


@pytest.fixture(scope="module")
def pa100k(schema):
    return load_mapping("pa100k", schema)


def _row(mapping, **bits):
    row = np.zeros(len(mapping.attributes), dtype=np.int8)
    for name, value in bits.items():
        row[mapping.column(name.replace("_", "&") if name == "Skirt_Dress" else name)] = value
    return row


@pytest.mark.parametrize(
    "name, attributes, mapped", [("pa100k", 26, 11), ("peta", 105, 66), ("rap1", 92, 49), ("rap2", 89, 49)]
)
def test_bundled_mappings_load_and_account_for_every_attribute(schema, name, attributes, mapped):
    mapping = load_mapping(name, schema)
    assert len(mapping.attributes) == attributes and len(mapping.mapped) == mapped
    named = {n for f in mapping.facets for n, _ in f.rules} | {n for f in mapping.facets for n in f.unrepresentable}
    assert named | set(mapping.unmapped) == set(mapping.attributes)
    assert not named & set(mapping.unmapped)
    assert set(BUNDLED) == {"pa100k", "peta", "rap1", "rap2"}


def test_pa100k_attribute_order_is_the_reference_one(pa100k):
    assert pa100k.attributes[:4] == ("Female", "AgeOver60", "Age18-60", "AgeLess18")
    assert pa100k.attributes[-5:] == ("LongCoat", "Trousers", "Shorts", "Skirt&Dress", "boots")
    assert pa100k.groups == ("gender", "upper", "lower", "shoes", "belongings")  # nothing about hair


def test_pa100k_bits_give_items_and_never_colours(pa100k):
    labels, contradictions = pa100k.labels(_row(pa100k, Female=1, ShortSleeve=1, Trousers=1, Backpack=1))
    assert contradictions == 0
    assert labels["gender"] == group_label(["woman"])
    assert labels["upper"] == group_label(["t-shirt", "polo shirt", "vest"])  # LongCoat = 0 also rules out a coat
    assert labels["lower"] == group_label(["trousers", "jeans", "leggings", "sweatpants"])
    assert labels["belongings"] == group_label(["backpack"])
    assert labels["hair"].masked
    assert all(label.colours is None for label in labels.values())
    assert labels["shoes"].items == {UNKNOWN, "sneakers", "sandals", "leather shoes", "high heels", "canvas shoes"}


def test_all_zero_facets_follow_their_otherwise(pa100k):
    labels, _ = pa100k.labels(_row(pa100k))
    assert labels["gender"] == group_label(["man"])  # an explicit otherwise
    assert labels["lower"].masked  # otherwise: any
    assert labels["upper"] == group_label(
        [UNKNOWN, "t-shirt", "shirt", "jacket", "sweater", "hoodie", "vest", "blouse", "polo shirt", "down jacket"]
    )  # the complement of the coat
    assert labels["belongings"].items == {UNKNOWN, "suitcase", "umbrella", "phone", "nothing"}


def test_two_positives_allow_either_and_a_contradiction_keeps_the_earlier_facet(pa100k):
    labels, contradictions = pa100k.labels(_row(pa100k, HandBag=1, Backpack=1, LongCoat=1, ShortSleeve=1))
    assert labels["belongings"] == group_label(["handbag", "backpack"])
    assert labels["upper"] == group_label(["coat"]) and contradictions == 1
    rows = np.stack([_row(pa100k, LongCoat=1, ShortSleeve=1)] * 3 + [_row(pa100k)])
    all_labels, total = pa100k.labels_for(rows)
    assert total == 3 and all_labels[0] is all_labels[1] and len(all_labels) == 4


def test_not_said_and_unrepresentable_attributes_silence_their_facet(schema):
    rap = load_mapping("rap2", schema)
    row = _row(rap, **{"ub-TShirt": 1})
    row[rap.column("ub-ShortSleeve")] = -1  # uncertain
    labels, _ = rap.labels(row)
    assert labels["upper"] == group_label(["t-shirt", "polo shirt"])
    row[rap.column("ub-Others")] = 1  # a type the schema cannot name: the type facet says nothing
    assert rap.labels(row)[0]["upper"].masked
    peta = load_mapping("peta", schema)
    yellow = _row(peta, footwearSneaker=1, footwearYellow=1)
    assert peta.labels(yellow)[0]["shoes"] == group_label(["sneakers"])  # the colour is left open, not "beige"


def test_aliases_name_the_same_column(schema):
    peta = load_mapping("peta", schema)
    assert peta.column("footwearSneakers") == peta.column("footwearSneaker") and peta.column("nonsense") is None


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_every_value_mapped_to_bits_and_back_is_allowed_by_its_labels(schema, name):
    mapping = load_mapping(name, schema)
    for group in schema.groups:
        for candidate in candidates(group):
            if group.name == "gender" and candidate.phrase == UNKNOWN:
                continue  # every dataset person has a gender: "unknown" maps to a man's bits
            bits = mapping.bits({group.name: candidate.phrase})
            label = mapping.labels(bits)[0][group.name]
            assert label.allows(candidate.item, candidate.colour), (name, candidate.phrase, label)


def test_bits_of_spac_values(pa100k):
    bits = pa100k.bits(
        {"gender": "woman", "upper": "red blouse", "lower": "blue jeans", "shoes": "black boots", "belongings": "phone"}
    )
    ticked = {a for a, b in zip(pa100k.attributes, bits) if b == 1}
    assert ticked == {"Female", "LongSleeve", "Trousers", "boots"}
    assert bits[pa100k.column("AgeOver60")] == -1 and bits[pa100k.column("Backpack")] == 0
    with pytest.raises(ValueError, match="expected 26 attribute bits"):
        pa100k.labels([0, 1])


def _minimal(**changes):
    data = {
        "dataset": "Toy",
        "attributes": ["Male", "Red", "Age"],
        "groups": {
            "gender": [{"attributes": {"Male": {"items": ["man"]}}, "otherwise": {"items": ["woman"]}}],
            "upper": [{"attributes": {"Red": {"colours": ["red"]}}, "otherwise": "any"}],
        },
        "unmapped": {"Age": "not a group"},
    }
    data.update(changes)
    return data


def test_a_minimal_mapping_parses(schema):
    mapping = parse_mapping(_minimal(), "toy.yaml", schema)
    assert mapping.mapped == ("Male", "Red") and mapping.groups == ("gender", "upper")
    labels, _ = mapping.labels([0, 1, 0])
    assert labels["gender"] == group_label(["woman"]) and labels["upper"] == group_label(None, ["red"])
    assert mapping.labels([0, 0, 0])[0]["upper"].masked
    assert mapping.bits({"upper": "red shirt"}).tolist() == [0, 1, -1]
    complement = parse_mapping(
        _minimal(
            groups={
                "upper": [{"attributes": {"Red": {"colours": ["red"]}}}],
                "gender": [{"attributes": {"Male": {"items": ["man"]}}}],
            }
        ),
        "toy.yaml",
        schema,
    )
    garment = {v.colour for v in schema.group("upper").values if v.colour}
    assert complement.labels([0, 0, 0])[0]["upper"].colours == (garment | {NO_COLOUR}) - {"red"}
    assert complement.labels([1, 0, 0])[0]["gender"] == group_label(["man"])
    assert complement.labels([0, 0, 0])[0]["gender"] == group_label([UNKNOWN, "woman"])


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": ""}, "dataset: expected the dataset's name"),
        ({"attributes": ["Male", "Male", "Red", "Age"]}, "'Male' is listed twice"),
        ({"unmapped": {}}, "'Age' is neither mapped nor listed under 'unmapped'"),
        ({"unmapped": {"Age": "x", "Male": "y"}}, "'Male' is already used at groups.gender"),
        ({"groups": {"torso": []}}, "groups.torso: not a SPAC group"),
        (
            {"groups": {"gender": [{"attributes": {"Male": {"items": ["boy"]}}}]}},
            "'boy' is not a specific item of group",
        ),
        ({"groups": {"upper": [{"attributes": {"Male": {"items": ["top"]}}}]}}, "'top' is not a specific item"),
        (
            {"groups": {"upper": [{"attributes": {"Male": {"items": ["shirt"]}, "Red": {"colours": ["red"]}}}]}},
            "must all allow items or all allow colours",
        ),
        (
            {"groups": {"upper": [{"attributes": {"Red": {"colours": ["red"]}}, "otherwise": {"items": ["shirt"]}}]}},
            "must allow colours like the facet's attributes",
        ),
        (
            {"groups": {"upper": [{"attributes": {"Red": ["red"]}}]}},
            re.escape("expected {items: [...]} or {colours: [...]}"),
        ),
        ({"groups": {"upper": [{"attributes": {"Nope": {"colours": ["red"]}}}]}}, "'Nope' is not one of the dataset's"),
        ({"groups": {"upper": [{"attributes": {}, "note": "x"}]}}, "expected a non-empty mapping"),
        ({"groups": {"upper": [{"attributes": {"Red": {"colours": ["red"]}}, "colour": 1}]}}, "colour: unexpected key"),
        ({"aliases": {"M": "Mal"}}, "aliases: expected a mapping of other spelling"),
        ({"extra": 1}, "extra: unexpected key"),
    ],
)
def test_malformed_mappings_are_one_line_errors_naming_file_and_key(schema, changes, message):
    with pytest.raises(MappingError, match=message) as error:
        parse_mapping(_minimal(**changes), "toy.yaml", schema)
    assert str(error.value).startswith("toy.yaml: ") and "\n" not in str(error.value)


def test_mapping_files_are_read_and_bad_yaml_is_one_line(schema, tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(_minimal()))
    assert load_mapping(path, schema).dataset == "Toy"
    path.write_text("dataset: [unclosed\n")
    with pytest.raises(MappingError, match=r"toy.yaml: line \d+: invalid YAML"):
        load_mapping(path, schema)
    with pytest.raises(MappingError, match="cannot read mapping file"):
        load_mapping(tmp_path / "missing.yaml", schema)
