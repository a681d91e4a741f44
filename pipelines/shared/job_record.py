"""``job.json``: what decides a corpus folder's contents, so a rerun resumes its own corpus and never mixes two.

The launcher writes it into the output folder before any shard. It holds the job's fingerprint of every
setting that changes the corpus (each job says which: ``fingerprint`` in :mod:`pipelines.synthesis.job` and
:mod:`pipelines.importing.job`). Settings that only change how the job runs (runner, workers, threads,
device, batch sizes, model sharing) are left out, so they may differ between a run and its resumption.
Sorted keys, no timestamps: the same settings give the same bytes. Its ``information`` part (:data:`INFORMATION`)
says where the run was made (e.g. the caption-model server's address): written, never compared, so the same
model served at another address resumes the corpus.

On a rerun into the same folder: the same fingerprint resumes (complete shards are skipped); another
one, or files of a run without ``job.json``, is refused with the differing settings named, unless
``overwrite`` removes the earlier run's files first: only names the job writes, never anything else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from common.errors import InputError
from common.training import check_same_settings
from pipelines.shared.corpus_parts import PARTS_DIR
from shards import layout, remote

INFORMATION = "information"  # the part of job.json that a resume does not compare (module doc)
# the corpus-wide files of every job that writes a corpus folder (synthesis, import), so a rerun of
# either job recognises, refuses or removes the other's
CORPUS_NAMES = (
    layout.MANIFEST_NAME,
    layout.DATASET_NAME,
    layout.DEAD_LETTER_NAME,
    layout.FILTER_REPORT_NAME,
    layout.IMPORT_REPORT_NAME,
)


def record_bytes(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def own_files(fs: Any, root: str, prefixes: set[str]) -> list[str]:
    """Names in ``root`` that the job writes: job.json, the corpus files, shards of ``prefixes``, and the
    temporary files of any of them (a crashed writer's); sorted. The parts folder (files being assembled,
    see :mod:`pipelines.shared.corpus_parts`) is not listed: it is always the job's, and a new run clears it."""
    names = []
    for entry in fs.ls(root, detail=True):
        name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        stem = name.split(remote.TEMP_MARKER, 1)[0]
        shard = layout.SHARD_FILE.fullmatch(stem)
        ours = stem in (layout.JOB_NAME, *CORPUS_NAMES) or (shard and shard["prefix"] in prefixes)
        if entry["type"] == "file" and ours:
            names.append(name)
    return sorted(names)


def _read_previous(fs: Any, path: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the earlier run's record, or None; why it could not be read, or None)."""
    if not fs.exists(path):
        return None, None
    try:
        with fs.open(path, "rb") as stream:
            record = json.loads(stream.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"{layout.JOB_NAME} is unreadable ({exc})"
    if not isinstance(record, dict):
        return None, f"{layout.JOB_NAME} does not hold a JSON object"
    return record, None


def _settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a resume compares: the record but its information."""
    return {name: value for name, value in record.items() if name != INFORMATION}


REMEDY = "use another --output, or pass --overwrite to replace it"


def _refusal(output: str, problem: str | None, earlier: list[str]) -> str:
    """Why a folder whose settings cannot be read is refused (an unreadable job.json, or files without one)."""
    if problem is not None:
        return f"--output {output}: {problem}; {REMEDY}"
    return (
        f"--output {output} holds files of a run without {layout.JOB_NAME} ({earlier[0]}, ...), made with "
        f"unknown settings; {REMEDY}"
    )


def prepare_output(output: str, record: Mapping[str, Any], overwrite: bool = False) -> list[str]:
    """Make ``output`` ready for a run with ``record``, then write its job.json; return the names removed.

    An empty folder, or one whose job.json holds ``record``, is kept as it is (a resume; temporary files
    a killed run left are removed, since none of this run's workers has started yet). Otherwise
    InputError names the differing settings, unless ``overwrite``: then the job's own files are removed
    first (shards of the earlier and the new prefix, corpus files, job.json), nothing else.
    """
    fs, root = remote.resolve(output)
    if fs.exists(root) and not fs.isdir(root):
        raise InputError(f"--output {output}: not a folder")
    current = json.loads(record_bytes(record))  # as it reads back from the file
    job_path = remote.join(fs, root, layout.JOB_NAME)
    previous, problem = _read_previous(fs, job_path) if fs.isdir(root) else (None, None)
    prefixes = {current["prefix"]}
    if previous is not None and isinstance(previous.get("prefix"), str):
        prefixes.add(previous["prefix"])
    found = own_files(fs, root, prefixes) if fs.isdir(root) else []
    temporaries = [name for name in found if remote.TEMP_MARKER in name]  # a killed run's half-written files
    earlier = [name for name in found if name != layout.JOB_NAME and name not in temporaries]
    if overwrite:
        # job.json goes last: a removal cut short still leaves the folder marked as the earlier run's
        for name in temporaries + earlier + [name for name in found if name == layout.JOB_NAME]:
            fs.rm(remote.join(fs, root, name))
    else:
        if earlier and problem is None and previous is not None:
            check_same_settings(
                f"--output {output}",
                _settings(previous),
                _settings(current),
                f"rerun with its settings to resume it, {REMEDY}",
            )
        elif earlier:
            raise InputError(_refusal(output, problem, earlier))
        for name in temporaries:  # no worker runs yet, so every temporary left here belongs to a run that died
            fs.rm(remote.join(fs, root, name))
    parts = remote.join(fs, root, PARTS_DIR)
    if fs.exists(parts):  # parts of a run that died before assembling them; every part is written again
        fs.rm(parts, recursive=True)
    fs.makedirs(root, exist_ok=True)
    remote.publish_bytes(fs, record_bytes(current), job_path)
    return found if overwrite else []
