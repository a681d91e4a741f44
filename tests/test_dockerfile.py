"""docker/Dockerfile (the Dataflow GPU worker image): read as text, since no Docker runs here."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

from common.allocator import TUNABLES

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def build_args() -> dict[str, str]:
    """The ARG defaults, by name."""
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for name, a in _instructions() if name == "ARG" and "=" in a}


def test_the_base_is_the_beam_sdk_image_named_by_the_build_args():
    # the versions themselves are compared with requirements.lock in tests/test_lock.py
    bases = [args for name, args in _instructions() if name == "FROM"]
    assert bases == ["apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION}"]
    assert {"PYTHON_VERSION", "BEAM_VERSION"} <= set(build_args())


def test_a_cuda_torch_is_installed_before_the_project_and_the_project_itself():
    instructions = _instructions()
    runs = [args for name, args in instructions if name == "RUN"]
    args = build_args()
    assert re.fullmatch(r"https://download\.pytorch\.org/whl/cu12\d", args["TORCH_INDEX_URL"])
    torch_step = next(i for i, run in enumerate(runs) if '--index-url "${TORCH_INDEX_URL}"' in run)
    project_step = next(
        i for i, run in enumerate(runs) if re.search(r"pip install .*-c requirements\.lock \"\.(\[[a-z,]+\])?\"", run)
    )
    assert torch_step < project_step
    assert "torch.version.cuda" in runs[project_step]  # the build stops on a CPU torch
    copied = {source for name, a in instructions if name == "COPY" for source in shlex.split(a)[:-1]}
    assert {"templates", "setup.cfg", "requirements.lock"} | installed_packages() <= copied
    assert not any(name == "ENTRYPOINT" for name, _ in instructions)  # Beam's boot stays the entry point
    assert (ROOT / args["PREDICTOR_DIR"] / "config.json").is_file()


def installed_packages() -> set[str]:
    """The top-level packages setup.cfg installs: the image must copy each of them."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    included = config["options.packages.find"]["include"].split()
    return {name for name in included if "." not in name}


def test_the_workers_get_the_malloc_thresholds_the_job_sets_for_its_own_process():
    envs = [args for name, args in _instructions() if name == "ENV"]
    assert f"GLIBC_TUNABLES={TUNABLES}" in envs
