import pytest

from common.config_files import check_fields, is_int, parse_config, rgb_numbers
from common.errors import InputError


class ModelError(InputError):
    pass


RULES = {
    "size": (is_int, "a positive integer"),
    "mean": (rgb_numbers, "a list of three finite numbers"),
    "inner": (lambda v: isinstance(v, dict), "a JSON object"),
}


def test_a_good_config_comes_back_as_its_dict():
    text = '{"size": 3, "mean": [0.5, 0.5, 0.5]}'
    assert parse_config(text, "x/config.json", ("size",), RULES) == {"size": 3, "mean": [0.5, 0.5, 0.5]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "x/config.json: invalid JSON (Expecting property name enclosed in double quotes at line 1)"),
        ("[" * 100_000 + "]" * 100_000, "x/config.json: invalid JSON (nested too deeply)"),
        ("[1, 2]", "x/config.json: expected a JSON object"),
        ('{"mean": [0, 0, 0]}', "x/config.json: missing key 'size'"),
        ('{"size": 1, "colour": 1}', "x/config.json: unexpected key 'colour'"),
        ('{"size": true}', "x/config.json: 'size' must be a positive integer, got true"),
        ('{"size": 1, "mean": [0, 0, NaN]}', "x/config.json: 'mean' must be a list of three finite numbers, got [0, 0"),
    ],
)
def test_a_bad_config_is_one_line_of_the_callers_error_naming_the_file_and_field(text, message):
    with pytest.raises(ModelError) as caught:
        parse_config(text, "x/config.json", ("size",), RULES, ModelError)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_the_first_missing_key_is_named_in_the_required_order():
    with pytest.raises(InputError, match="missing key 'inner'"):
        parse_config("{}", "c", ("inner", "size"), RULES)


def test_a_nested_object_names_its_field_with_the_prefix_and_cuts_a_long_value():
    with pytest.raises(InputError, match=r"^c: 'backbone\.size' must be a positive integer, got \"a{59}$"):
        check_fields({"size": "a" * 500}, RULES, "c", "backbone.")
    with pytest.raises(InputError, match="unexpected key 'backbone.depth'"):
        check_fields({"depth": 1}, RULES, "c", "backbone.")


def test_the_value_checks():
    assert is_int(1) and is_int(5, high=5) and not is_int(6, high=5) and not is_int(0)
    assert is_int(3, 3, 3) and not is_int(True) and not is_int(1.0)
    assert rgb_numbers([0, 0.5, -1]) and not rgb_numbers([0, 0.5, -1], positive=True)
    assert not rgb_numbers([1, 1]) and not rgb_numbers([1, 1, True]) and not rgb_numbers([1, 1, float("inf")])
