from pathlib import Path

import pytest
import yaml

from spac.attributes import GROUP_ORDER, UNKNOWN, SchemaError, load_schema, parse_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "templates" / "attributes.yaml"


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def test_bundled_schema_meets_the_vocabulary_requirements():
    schema = load_schema()
    assert schema.group_names == GROUP_ORDER
    garment_colours = {v.colour for v in schema.group("upper").values}
    assert len(garment_colours) >= 12
    assert len(schema.group("upper").items) >= 10
    assert len(schema.group("lower").items) >= 8
    assert len(schema.group("shoes").items) >= 5
    belongings = {item.name for item in schema.group("belongings").items}
    assert {"backpack", "handbag", "shoulder bag", "suitcase", "umbrella", "phone", "nothing"} <= belongings
    assert any(item.synonyms for item in schema.group("upper").items)
    for group in schema.groups:
        assert group.labels[0] == UNKNOWN
        assert len(set(group.labels)) == len(group.labels)


def test_values_carry_grammar_facts():
    schema = load_schema()
    jeans = schema.value("lower", "blue jeans")
    assert (jeans.item, jeans.colour, jeans.plural) == ("jeans", "blue", True)
    assert schema.value("upper", "red t-shirt").plural is False
    assert schema.value("hair", "long brown hair").item == "long hair"
    assert schema.value("belongings", "phone").colour is None


def test_released_string_round_trip_and_validation():
    schema = load_schema()
    attrs = {"gender": "woman", "upper": "white blouse", "lower": "black skirt"}
    text = schema.to_released(attrs)
    assert text == "woman,unknown,white blouse,black skirt,unknown,unknown"
    assert schema.from_released(text) == schema.validate(attrs)
    with pytest.raises(ValueError, match="not a value of attribute group 'upper'"):
        schema.validate({"upper": "plaid kilt"})
    with pytest.raises(ValueError, match="unknown attribute group"):
        schema.validate({"hat": "red hat"})
    with pytest.raises(ValueError, match="expected 6"):
        schema.from_released("man,black hair")


def test_the_papers_released_example_parses_and_round_trips_byte_identically():
    schema = load_schema()
    text = "man,black hair,black shirt,pink shorts,black shoes,unknown"
    attrs = schema.from_released(text)
    assert attrs == {
        "gender": "man",
        "hair": "black hair",
        "upper": "black shirt",
        "lower": "pink shorts",
        "shoes": "black shoes",
        "belongings": UNKNOWN,
    }
    assert schema.to_released(attrs) == text


def test_version_2_adds_generic_items_and_bare_values_that_are_never_specific():
    schema = load_schema()
    assert schema.version == 2
    generic = {g.name: [i.name for i in g.items if i.generic] for g in schema.groups}
    assert generic == {
        "gender": [],
        "hair": ["hair"],
        "upper": ["top"],
        "lower": [],
        "shoes": ["shoes"],
        "belongings": ["bag"],
    }
    for group, phrase, item, colour in [
        ("hair", "black hair", "hair", "black"),
        ("upper", "white top", "top", "white"),
        ("shoes", "black shoes", "shoes", "black"),
        ("belongings", "brown bag", "bag", "brown"),
    ]:
        value = schema.value(group, phrase)
        assert (value.item, value.colour, value.generic, value.bare, value.specific) == (
            item,
            colour,
            True,
            False,
            False,
        )
    for group, phrase in [
        ("lower", "jeans"),
        ("hair", "long hair"),
        ("belongings", "backpack"),
        ("belongings", "bag"),
        ("upper", "down jacket"),
        ("shoes", "high heels"),
    ]:
        value = schema.value(group, phrase)
        assert (value.colour, value.bare, value.specific) == (None, True, False), phrase
    assert schema.value("lower", "jeans").plural
    for phrase in ("hair", "top", "shoes"):  # a generic noun alone says nothing: no bare value
        assert phrase not in schema.group({"hair": "hair", "top": "upper", "shoes": "shoes"}[phrase])
    assert schema.value("belongings", "phone").specific and schema.value("upper", "red t-shirt").specific
    assert "black trousers" in schema.group("lower") and "black pants" not in schema.group("lower")
    assert "top" not in next(i for i in schema.group("upper").items if i.name == "blouse").synonyms
    assert {"light", "dark"} <= set(schema.colour_modifiers) and "leather" in schema.descriptors


def test_every_version_1_value_is_kept():
    # the version-1 phrases: every specific value of version 2, in the same order
    schema = load_schema()
    v1_counts = {"gender": 2, "hair": 24, "upper": 130, "lower": 104, "shoes": 48, "belongings": 42}
    assert {g.name: sum(v.specific for v in g.values) for g in schema.groups} == v1_counts


def test_bare_values_follow_the_group_default_and_the_item_override(raw):
    raw["groups"][4]["bare"] = False
    raw["groups"][4]["items"][0]["bare"] = True
    schema = parse_schema(raw, "x.yaml")
    bare = [v.phrase for v in schema.group("shoes").values if v.bare]
    assert bare == ["sneakers"]
    raw["groups"][5]["items"][5]["bare"] = True  # phone has no colour
    with pytest.raises(SchemaError, match=r"groups\[5\]\.items\[5\]\.bare: only a coloured item"):
        parse_schema(raw, "x.yaml")


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda d: d["colours"]["red"].update(rgb=[300, 0, 0]), "colours.red.rgb"),
        (lambda d: d["groups"][2]["items"][0].update(plural="yes"), "groups[2].items[0].plural"),
        (lambda d: d["groups"][3]["items"].append({"item": "unknown"}), "groups[3].items[8].item"),
        (lambda d: d["groups"][1].update(palette="sparkly"), "groups[1].palette"),
        (lambda d: d["palettes"]["hair"].append("teal"), "palettes.hair[6]"),
        (lambda d: d["groups"].pop(5), "groups"),
        (lambda d: d["groups"][4]["items"][0].update(colour="red"), "groups[4].items[0].colour"),
        (lambda d: d.pop("schema_version"), "schema_version"),
        (lambda d: d["groups"][1]["items"][4].update(generic="yes"), "groups[1].items[4].generic"),
        (lambda d: d["groups"][1].update(bare="no"), "groups[1].bare"),
        (lambda d: d["groups"][1].update(colour="red"), "groups[1].colour"),
        (lambda d: d.update(descriptors="leather"), "descriptors"),
        (lambda d: d.update(colour_modifiers=[1]), "colour_modifiers[0]"),
        (lambda d: d.update(descriptors=["leather", "tan"]), "descriptors[1]"),
    ],
)
def test_malformed_schema_gives_one_line_error_naming_file_and_key(raw, tmp_path, mutate, key):
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}:")


def test_unreadable_and_invalid_yaml_files(tmp_path):
    with pytest.raises(SchemaError, match="cannot read schema file"):
        load_schema(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("groups: [\n  - name: gender\n  items: {")
    with pytest.raises(SchemaError, match=r"broken.yaml: line \d+: invalid YAML"):
        load_schema(broken)


def test_duplicate_phrase_is_rejected(raw):
    raw["groups"][2]["items"].append({"item": "t-shirt"})
    with pytest.raises(SchemaError, match="same phrase"):
        parse_schema(raw, "x.yaml")
