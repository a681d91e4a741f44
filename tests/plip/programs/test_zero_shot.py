import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from plip.programs import dataset_split
from plip.programs.zero_shot import main
from tests.plip.pedes_fixtures import dataset_fixture, rstpreid_fixture

REPO = Path(__file__).resolve().parents[3]

SPLITS = {0: "train", 1: "test", 2: "test", 3: "test", 4: "test"}


dataset = dataset_fixture(SPLITS)


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    from plip.checkpoint import save_checkpoint, save_released
    from plip.factory import create_model

    torch.manual_seed(0)
    model = create_model("RN-tiny", tic={"weight": 0}, iap={"weight": 0})
    folder = tmp_path_factory.mktemp("checkpoints")
    save_released(model, folder / "tiny.pth.tar")
    return save_checkpoint(folder / "ours", model), folder / "tiny.pth.tar"


def test_cli_end_to_end_with_our_and_released_checkpoints(dataset, tiny_checkpoints, tmp_path, capsys):
    ours, released = tiny_checkpoints
    common = ["--dataset", "CUHK-PEDES", "--root", str(dataset), "--device", "cpu", "--batch-size", "3", "--quiet"]
    assert main(["--checkpoint", str(ours), "--json", str(tmp_path / "a.json"), "--map", "released", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("R@1 ") and "mAP(standard)" in out and "mAP(released, trapezoid)" in out
    assert main(["--checkpoint", str(released), "--model", "RN-tiny", "--json", str(tmp_path / "b.json"), *common]) == 0
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert a["metrics"]["queries"] == 16 and 0 <= a["metrics"]["R@1"] <= 100
    assert a["metrics"] == pytest.approx(b["metrics"])  # same weights through both formats
    assert a["settings"]["map_variant"] == "released" and b["settings"]["split"] == "test"


rstpreid = rstpreid_fixture({0: "train", 1: "test", 2: "test", 3: "val"})


def test_rstpreid_from_its_json_and_from_its_split_files(rstpreid, tiny_checkpoints, tmp_path):
    root = shutil.copytree(rstpreid, tmp_path / "RSTPReid")
    common = [
        "--checkpoint",
        str(tiny_checkpoints[0]),
        "--dataset",
        "RSTPReid",
        "--root",
        str(root),
        "--device",
        "cpu",
        "--batch-size",
        "4",
        "--quiet",
    ]
    assert main([*common, "--json", str(tmp_path / "raw.json")]) == 0
    assert dataset_split.main(["--data-root", str(tmp_path), "--quiet"]) == 0
    (root / "data_captions.json").unlink()  # from here on only RSTPReid-test.json / -valid.json are read
    assert main([*common, "--json", str(tmp_path / "split.json")]) == 0
    assert main([*common, "--split", "val", "--json", str(tmp_path / "val.json")]) == 0
    raw, split, val = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("raw", "split", "val"))
    assert raw["metrics"]["queries"] == 20 and raw["metrics"] == split["metrics"]  # 2 ids x 5 images x 2 captions
    assert val["metrics"]["queries"] == 10
    assert raw["settings"]["dataset"] == "RSTPReid"


def test_help_names_every_dataset(capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "{CUHK-PEDES,ICFG-PEDES,RSTPReid,shards}" in out
    assert "reid_raw.json / ICFG_PEDES.json / data_captions.json" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "CUHK-PEDES", "--root", "{missing}"], "--root {missing}: not a folder"),
        (["--dataset", "ICFG-PEDES", "--root", "{dataset}"], "neither ICFG-PEDES-test.json nor ICFG_PEDES.json"),
        (["--dataset", "RSTPReid", "--root", "{dataset}"], "neither RSTPReid-test.json nor data_captions.json"),
        (["--dataset", "shards", "--root", "{dataset}"], "--dataset shards needs --identities"),
        (["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--identities", "1-2"], "applies only to --dataset shards"),
        (
            ["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--checkpoint", "{garbage}", "--model", "RN-tiny"],
            "not a readable torch checkpoint",
        ),
        (["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--device", "tpu"], "invalid device 'tpu'"),
        (
            ["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--checkpoint", "{empty}", "--model", "RN-tiny"],
            "{empty}: not a readable torch checkpoint (empty file)",
        ),
        (
            ["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--checkpoint", "{listed}", "--model", "RN-tiny"],
            "ImgEncoder_state_dict: expected a state dict (names -> tensors), found list",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(dataset, tmp_path, capsys, args, message):
    garbage = tmp_path / "model.pth.tar"
    garbage.write_bytes(b"not a checkpoint")
    (tmp_path / "empty.pth.tar").write_bytes(b"")
    torch.save({"ImgEncoder_state_dict": [torch.zeros(1)], "TxtEncoder_state_dict": {}}, tmp_path / "listed.pth.tar")
    values = {
        "missing": tmp_path / "nope",
        "dataset": dataset,
        "garbage": garbage,
        "empty": tmp_path / "empty.pth.tar",
        "listed": tmp_path / "listed.pth.tar",
    }
    argv = [a.format(**values) for a in args] + ["--quiet"]
    if "--checkpoint" not in argv:
        argv += ["--checkpoint", str(garbage)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(**values) in err[0]


def test_module_run_exits_2_with_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "plip.zero_shot",
            "--checkpoint",
            str(tmp_path / "none"),
            "--dataset",
            "CUHK-PEDES",
            "--root",
            str(tmp_path / "nope"),
            "--device",
            "cpu",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"python -m plip.zero_shot: error: --root {tmp_path / 'nope'}: not a folder\n"


@pytest.mark.parametrize("workers", ["0", "1"])
@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "cannot read image {image}: corrupt or unreadable image"),
        (lambda p: p.write_bytes(b"GIF89a not really"), "cannot read image {image}: not a decodable image"),
        (lambda p: p.unlink(), "reid_raw.json: entry 5: image not found: {image}"),
    ],
)
def test_a_damaged_gallery_image_is_one_line_naming_the_file(
    dataset, tiny_checkpoints, tmp_path, capsys, workers, damage, message
):
    root = shutil.copytree(dataset, tmp_path / "CUHK-PEDES")
    image = root / "imgs" / "2" / "1.jpg"  # a test image
    damage(image)
    argv = [
        "--checkpoint",
        str(tiny_checkpoints[0]),
        "--dataset",
        "CUHK-PEDES",
        "--root",
        str(root),
        "--device",
        "cpu",
        "--batch-size",
        "3",
        "--num-workers",
        workers,
        "--quiet",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(image=image) in err[0], err
