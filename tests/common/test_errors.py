"""error_line: the one helper that turns an exception into one line."""

from common.errors import InputError, error_line


def test_an_empty_message_gives_the_type_name():
    assert error_line(ValueError("")) == "ValueError"
    assert error_line(InputError("  \n \n")) == "InputError"
    assert error_line(KeyError()) == "KeyError"


def test_a_plain_message_is_kept_as_written():
    assert error_line(ValueError("a.jpg: not a decodable image")) == "a.jpg: not a decodable image"
    assert error_line(ValueError("--lr: ValueError: stays as written")) == "--lr: ValueError: stays as written"


def test_a_library_message_gives_its_first_line_not_the_advice_after_it():
    hub = OSError(
        "x is not a local folder and is not a valid model identifier\n\n"
        "If this is a private repository, make sure to pass a token"
    )
    assert error_line(hub) == "x is not a local folder and is not a valid model identifier"


def test_a_re_raised_worker_error_gives_the_worker_message():
    worker = ValueError(
        "Caught ValueError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
        'last):\n  File "x.py", line 1\nplip.transforms.ImageReadError: a.jpg: not a decodable image'
    )
    assert error_line(worker) == "a.jpg: not a decodable image"
    beam = RuntimeError('Traceback (most recent call last):\n  File "y.py", line 2\n\nValueError: bad row 7\n')
    assert error_line(beam) == "bad row 7"


def test_an_input_error_is_a_value_error():
    """Callers that catch ValueError around a parse keep working."""
    assert issubclass(InputError, ValueError)
