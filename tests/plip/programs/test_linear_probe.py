import json
from pathlib import Path

import pytest

from plip.checkpoint import save_checkpoint
from plip.programs import zero_shot
from plip.programs.linear_probe import main
from spac.captioning.captioner import caption
from spac.render import render_dataset
from tests.plip._tiny_model import single_thread, tiny_model  # noqa: F401  (single_thread: autouse fixture)


def write_rendered_pedes(root: Path, splits: dict[str, range], images_per_id: int = 2, seed: int = 0) -> Path:
    """A CUHK-PEDES style folder (``reid_raw.json`` + ``imgs/``) of rendered people: each identity range of
    ``splits`` goes to that split, and every image gets the two style captions of its visible attributes."""
    identities = max(r.stop for r in splits.values())
    labels = render_dataset(root / "imgs", identities, images_per_id, seed=seed)
    split_of = {i: name for name, r in splits.items() for i in r}
    entries = []
    for label in labels:
        texts = [c.text for c in caption(label["visible"], label["file_path"], seed=seed) if c.style != "template"]
        entries.append(
            {
                "split": split_of[label["id"]],
                "captions": texts,
                "file_path": label["file_path"],
                "processed_tokens": [t.split() for t in texts],
                "id": label["id"],
            }
        )
    (root / "reid_raw.json").write_text(json.dumps(entries), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    data = write_rendered_pedes(root / "CUHK-PEDES", {"train": range(0, 6), "test": range(6, 10)})
    model = tiny_model(seed=0, vision={"image_size": [256, 128]}, tic={"weight": 0}, iap={"weight": 0})
    return data, save_checkpoint(root / "ckpt", model)


def test_the_probe_starts_at_zero_shot_learns_and_folds_into_a_checkpoint_every_program_reads(inputs, tmp_path, capsys):
    data, checkpoint = inputs
    common = ["--dataset", "CUHK-PEDES", "--root", str(data), "--device", "cpu", "--quiet"]
    assert (
        main(
            [
                "--checkpoint",
                str(checkpoint),
                *common,
                "--epochs",
                "8",
                "--batch-size",
                "8",
                "--pairs-per-id",
                "2",
                "--out",
                str(tmp_path / "probe"),
                "--json",
                str(tmp_path / "probe.json"),
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("zero-shot: R@1 ") and lines[1].startswith("linear probe: R@1 ")
    record = json.loads((tmp_path / "probe.json").read_text())
    assert record == json.loads((tmp_path / "probe" / "metrics.json").read_text())
    assert record["train_pairs"] == 24 and record["train_identities"] == 6 and len(record["epoch_losses"]) == 8
    assert record["epoch_losses"][-1] < record["epoch_losses"][0]
    # before training the probe is the identity: its line is plip.zero_shot's
    assert zero_shot.main(["--checkpoint", str(checkpoint), *common, "--json", str(tmp_path / "zs.json")]) == 0
    assert json.loads((tmp_path / "zs.json").read_text())["metrics"] == pytest.approx(record["zero_shot"])
    # the probe folded into the image encoder: plip.zero_shot on model/ reproduces the probed metrics
    assert (
        zero_shot.main(
            ["--checkpoint", str(tmp_path / "probe" / "model"), *common, "--json", str(tmp_path / "folded.json")]
        )
        == 0
    )
    folded = json.loads((tmp_path / "folded.json").read_text())["metrics"]
    assert folded == pytest.approx(record["linear_probe"], abs=1e-6)
    assert (tmp_path / "probe" / "probe.safetensors").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--batch-size", "6", "--pairs-per-id", "4"], "--batch-size 6 must be a multiple of --pairs-per-id 4"),
        (["--root", "{tmp}/nope"], "--root {tmp}/nope: not a folder"),
        (["--dataset", "ICFG-PEDES"], "neither ICFG-PEDES-train.json nor ICFG_PEDES.json"),
        (["--batch-size", "64", "--pairs-per-id", "4"], "6 training identities cannot fill a batch of 16 identities"),
        (["--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    ],
)
def test_bad_input_is_one_line_exit_2(inputs, tmp_path, capsys, args, message):
    data, checkpoint = inputs
    argv = [
        "--checkpoint",
        str(checkpoint),
        "--dataset",
        "CUHK-PEDES",
        "--root",
        str(data),
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--quiet",
    ]
    assert main(argv + [a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(tmp=tmp_path) in err[0], err
