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
