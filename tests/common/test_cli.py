"""The shared CLI conventions: argparse type= checks, one-line errors with exit code 2 for bad input (a bug
shows its traceback), --quiet."""

import argparse
import errno
import os

import pytest
import torch

from common import allocator
from common.allocator import TUNABLES
from common.cli import (
    DEBUG_VARIABLE,
    CliError,
    OneLineArgumentParser,
    add_quiet_flag,
    device,
    json_object,
    name_list,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    run_main,
    unit_float,
)
from common.errors import InputError


@pytest.mark.parametrize(
    "kind, text, value",
    [
        (positive_int, "3", 3),
        (non_negative_int, "0", 0),
        (positive_float, "2.5", 2.5),
        (non_negative_float, "0", 0.0),
        (unit_float, "0", 0.0),
        (unit_float, "1", 1.0),
        (json_object, '{"a": [1]}', {"a": [1]}),
    ],
)
def test_types_accept_good_values(kind, text, value):
    assert kind(text) == value


@pytest.mark.parametrize(
    "kind, text, message",
    [
        (positive_int, "0", "must be at least 1, got 0"),
        (positive_int, "1.5", "expected an integer, got '1.5'"),
        (non_negative_int, "-1", "must be >= 0, got -1"),
        (positive_float, "0", "must be a positive number, got 0"),
        (positive_float, "inf", "must be a positive number, got inf"),
        (positive_float, "x", "expected a number, got 'x'"),
        (non_negative_float, "-0.5", "must be a number >= 0, got -0.5"),
        (non_negative_float, "nan", "must be a number >= 0, got nan"),
        (unit_float, "1.01", "must be between 0 and 1, got 1.01"),
        (json_object, "[1]", "must be a JSON object"),
        (json_object, "{", "not valid JSON"),
        (device, "gpu", "invalid device 'gpu'"),
    ],
)
def test_types_reject_bad_values_with_a_message(kind, text, message):
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        kind(text)


def test_device_type_gives_a_checked_torch_device():
    assert device("cpu") == torch.device("cpu")
    assert device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_bad_flag_is_one_line_naming_the_flag_and_exit_2(capsys):
    parser = OneLineArgumentParser(prog="tool")
    parser.add_argument("--steps", type=positive_int, default=1, help="steps")
    add_quiet_flag(parser)
    assert parser.parse_args(["--quiet"]).quiet and not parser.parse_args([]).quiet
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["--steps", "0"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "tool: error: argument --steps: must be at least 1, got 0\n"


def _raises(exc):
    def main(argv):
        raise exc

    return main


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)


@pytest.mark.parametrize(
    "exc, line",
    [
        (CliError("bad input"), "tool: error: bad input"),
        (
            InputError(
                "Caught InputError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                "  detail\ncommon.errors.InputError: last line"
            ),
            "tool: error: last line",
        ),
        (InputError(""), "tool: error: InputError"),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/x"),
            "tool: error: No such file or directory: /x",
        ),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/d"), "tool: error: Is a directory: /d"),
    ],
)
def test_run_main_turns_bad_input_into_one_line_and_exit_2(capsys, exc, line):
    assert run_main("tool", _raises(exc), []) == 2
    assert capsys.readouterr().err == line + "\n"


def test_every_one_line_error_of_the_project_is_an_input_error():
    from plip.checkpoint import CheckpointError
    from plip.embedding_index import EmbeddingIndexError
    from plip.programs.eval_data import DatasetFormatError
    from plip.transforms import ImageReadError
    from shards.images import ImageRejected
    from spac.attributes import SchemaError
    from spac.captioning.slots import TemplateError
    from spac.predictor.datasets.mapping import MappingError
    from spac.sources.json_lists import JsonListError

    for kind in (
        CliError,
        CheckpointError,
        EmbeddingIndexError,
        DatasetFormatError,
        ImageReadError,
        ImageRejected,
        SchemaError,
        TemplateError,
        MappingError,
        JsonListError,
    ):
        assert issubclass(kind, InputError), kind


def test_run_main_passes_the_exit_code_and_argv_and_lets_bugs_through(capsys):
    assert run_main("tool", lambda argv: len(argv), ["a", "b"]) == 2
    assert run_main("tool", _raises(KeyboardInterrupt()), []) == 130
    assert capsys.readouterr().err == "tool: interrupted\n"
    with pytest.raises(TypeError):
        run_main("tool", _raises(TypeError("a bug")), [])


@pytest.mark.parametrize(
    "bug",
    [
        ValueError("operands could not be broadcast together with shapes (3,) (4,)"),
        IndexError("list index out of range"),
        OSError("a bug, not a path"),
    ],
)
def test_a_programming_error_is_not_reported_as_bad_input(capsys, bug):
    """A plain ValueError or IndexError raised in our code is a bug: it propagates (Python prints its traceback)."""
    with pytest.raises(type(bug)) as raised:
        run_main("tool", _raises(bug), [])
    assert raised.value is bug
    assert "error:" not in capsys.readouterr().err


def test_debug_shows_the_traceback_of_bad_input_too(monkeypatch, capsys):
    bad = InputError("bad input")
    with pytest.raises(InputError):
        run_main("tool", _raises(bad), [], debug=True)
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    with pytest.raises(InputError):
        run_main("tool", _raises(bad), [])
    with pytest.raises(FileNotFoundError):
        run_main("tool", _raises(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x")), [])
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(DEBUG_VARIABLE, "0")
    assert run_main("tool", _raises(bad), []) == 2


def test_name_list_keeps_known_names_once_in_order_and_refuses_others():
    parse = name_list(("ivlc", "tic", "iap"), "loss")
    assert parse(" tic, ivlc ,tic,") == ("tic", "ivlc")
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown loss 'mlm' \(choose from ivlc, tic, iap\)"):
        parse("ivlc,mlm")
    with pytest.raises(argparse.ArgumentTypeError, match="none given"):
        parse(" , ")


def test_a_missing_file_whose_name_holds_a_newline_is_still_one_line(capsys):
    def main(argv):
        raise FileNotFoundError(2, "No such file or directory", "a.jpg\nx: error: forged")

    assert run_main("x", main, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a.jpg\\nx: error: forged" in err


def test_every_command_runs_with_the_malloc_thresholds(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    seen = []
    assert run_main("prog", lambda argv: seen.append(os.environ.get("GLIBC_TUNABLES")) or 0, []) == 0
    expected = TUNABLES if allocator._glibc() is not None else None  # another C library: nothing to set
    assert seen == [expected]
