"""The shared CLI conventions: argparse type= checks, one-line errors with exit code 2, --quiet."""
import argparse
import errno

import pytest
import torch

from common.cli import (CliError, OneLineArgumentParser, add_quiet_flag, device, json_object, name_list,
                              non_negative_float, non_negative_int, one_line, positive_float, positive_int, run_main, unit_float)


@pytest.mark.parametrize("kind, text, value", [
    (positive_int, "3", 3), (non_negative_int, "0", 0), (positive_float, "2.5", 2.5), (non_negative_float, "0", 0.0),
    (unit_float, "0", 0.0), (unit_float, "1", 1.0), (json_object, '{"a": [1]}', {"a": [1]}),
])
def test_types_accept_good_values(kind, text, value):
    assert kind(text) == value


@pytest.mark.parametrize("kind, text, message", [
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
])
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


@pytest.mark.parametrize("exc, line", [
    (CliError("bad input"), "tool: error: bad input"),
    (ValueError("first\n  detail\nlast line"), "tool: error: last line"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x"), "tool: error: No such file or directory: /x"),
])
def test_run_main_turns_user_and_library_errors_into_one_line_and_exit_2(capsys, exc, line):
    assert run_main("tool", _raises(exc), []) == 2
    assert capsys.readouterr().err == line + "\n"


def test_run_main_passes_the_exit_code_and_argv_and_lets_bugs_through(capsys):
    assert run_main("tool", lambda argv: len(argv), ["a", "b"]) == 2
    assert run_main("tool", _raises(KeyboardInterrupt()), []) == 130
    assert capsys.readouterr().err == "tool: interrupted\n"
    with pytest.raises(TypeError):
        run_main("tool", _raises(TypeError("a bug")), [])


def test_one_line_keeps_the_last_non_blank_line():
    assert one_line(ValueError("a\n\nb\n")) == "b"
    assert one_line(ValueError("")) == "ValueError"


def test_one_line_keeps_the_message_of_a_re_raised_worker_error():
    from common.cli import one_line

    worker = ValueError("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                        "last):\n  File \"x.py\", line 1\nplip.transforms.ImageReadError: a.jpg: not a decodable image")
    assert one_line(worker) == "a.jpg: not a decodable image"
    assert one_line(ValueError("--lr: ValueError: stays as written")) == "--lr: ValueError: stays as written"
    assert one_line(ValueError("")) == "ValueError"


def test_name_list_keeps_known_names_once_in_order_and_refuses_others():
    parse = name_list(("ivlc", "tic", "iap"), "loss")
    assert parse(" tic, ivlc ,tic,") == ("tic", "ivlc")
    with pytest.raises(argparse.ArgumentTypeError, match=r"unknown loss 'mlm' \(choose from ivlc, tic, iap\)"):
        parse("ivlc,mlm")
    with pytest.raises(argparse.ArgumentTypeError, match="none given"):
        parse(" , ")
