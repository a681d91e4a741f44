"""One job over a folder that mixes good images with hostile files: each hostile file is kept or
dead-lettered with its reason, nothing else is lost, and the counters add up."""

from __future__ import annotations

import json
import os

from pipelines import synthesize
from tests.pipelines.conftest import JOB_FLAGS
from tests.pipelines.hostile_folder import (
    GOOD_PER_IDENTITY,
    LINK_NAME,
    LINK_OUTCOME,
    build_hostile_folder,
    hostile_files,
)


def test_every_hostile_file_is_kept_or_dead_lettered_with_its_reason(tmp_path, colour_predictor):
    root = build_hostile_folder(tmp_path / "in")
    out = tmp_path / "out"
    argv = [
        "--runner=DirectRunner",
        "--input",
        str(root),
        "--output",
        str(out),
        "--predictor",
        str(colour_predictor),
        "--max_file_bytes",
        "2000000",
        *JOB_FLAGS,
    ]
    counters = synthesize.counters(synthesize.run(argv, save_main_session=False))
    expected = {
        os.fsencode(root).decode("utf-8", "backslashreplace") + "/" + name.decode("utf-8", "backslashreplace"): outcome
        for name, (_, outcome) in hostile_files().items()
    }
    expected[f"{root}/{LINK_NAME}"] = LINK_OUTCOME
    records = [json.loads(line) for line in (out / "deadletter.jsonl").read_text().splitlines()]
    letters = {r["path"]: r["reason"] for r in records if r["stage"] in ("read", "decode")}  # not the filters
    for path, outcome in expected.items():
        if outcome == "kept":
            assert path not in letters
        else:
            assert outcome in letters[path], (path, letters.get(path))
    kept = 2 * GOOD_PER_IDENTITY + sum(outcome == "kept" for outcome in expected.values())
    assert counters["read"] == kept + len(letters) and counters["dead_lettered"] == len(letters)
    assert counters["decoded"] == kept
    filtered = sum(v for k, v in counters.items() if k.startswith("filtered_"))
    assert counters["written"] + filtered == kept
    assert len(json.loads((out / "synthpedes_dataset.json").read_text())) == counters["written"]
