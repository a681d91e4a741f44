"""Helpers of the synthesis job's tests."""

from __future__ import annotations

from pathlib import Path

from common.cli import run_main
from pipelines import synthesize


def assert_refused_in_one_line(capsys, folder: Path, predictor: Path, flags: list[str], message: str) -> None:
    """The job over ``folder`` with ``predictor`` and ``flags`` exits 2 with one line on stderr that names
    ``message``, before it makes its output folder."""
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(folder),
        "--output",
        str(folder / "out"),
        "--predictor",
        str(predictor),
        *flags,
    ]
    assert run_main(synthesize.PROG, synthesize.cli_main, argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err and err.startswith(synthesize.PROG)
    assert not (folder / "out").exists()
