import json

import pytest
import torch
from torch import nn

from plip.eval_data import EVAL_MEAN, EVAL_STD, load_eval_split
from plip.zero_shot import cli_main, evaluate
from spac.cli.support import run_main
from tests.plip.pedes_fixtures import COLOURS, NAMES, make_entries, write_dataset

SPLITS = {0: "train", 1: "test", 2: "test", 3: "test", 4: "test"}


class ColourModel(nn.Module):
    """A fake encoder: an image is its mean colour, a caption the colour it names (or black when none)."""

    def __init__(self, mislabel: dict[str, str] | None = None):
        super().__init__()
        self.mislabel = mislabel or {}
        self.index = {name: i for i, name in NAMES.items()}

    def tokenize(self, texts):
        ids = []
        for text in texts:
            words = [self.mislabel.get(w, w) for w in text.split() if w in self.index]
            ids.append([self.index[words[0]]])
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.ones(len(ids), 1, dtype=torch.long)}

    def encode_text(self, input_ids, attention_mask):
        return torch.tensor([COLOURS[int(i)] for i in input_ids[:, 0]], dtype=torch.float32) / 255

    def encode_image(self, images):
        std, mean = torch.tensor(EVAL_STD).view(1, 3), torch.tensor(EVAL_MEAN).view(1, 3)
        return images.mean(dim=(2, 3)) * std + mean


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("CUHK-PEDES")
    write_dataset(root, make_entries(SPLITS))
    return root


def test_fake_model_retrieves_perfectly_and_batch_size_does_not_matter(dataset):
    queries, gallery = load_eval_split("CUHK-PEDES", dataset, "test")
    model = ColourModel().train()
    one = evaluate(model, queries, gallery, batch_size=1)
    assert model.training  # put back for the training loop
    assert one == evaluate(model, queries, gallery, batch_size=5)
    assert (one["R@1"], one["mAP"], one["mINP"], one["queries"]) == (100.0, 100.0, 100.0, 16)


def test_evaluation_leaves_the_global_rng_untouched(dataset):
    # Training evaluates between steps; an evaluation must not shift later dropout / augmentation draws.
    queries, gallery = load_eval_split("CUHK-PEDES", dataset, "test")
    torch.manual_seed(3)
    before = torch.get_rng_state()
    evaluate(ColourModel(), queries, gallery, batch_size=4)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_confused_caption_lowers_the_metrics(dataset):
    queries, gallery = load_eval_split("CUHK-PEDES", dataset, "test")
    metrics = evaluate(ColourModel(mislabel={"yellow": "blue"}).eval(), queries, gallery, batch_size=4)
    # The 4 yellow queries now rank the two blue images first (cosine ~1), so their hits sit at ranks 3..8.
    assert metrics["R@1"] == pytest.approx(75.0)
    assert metrics["R@10"] == pytest.approx(100.0)
    best, worst = (1 / 3 + 2 / 4) / 2, (1 / 7 + 2 / 8) / 2
    assert 100 * (12 + 4 * worst) / 16 <= metrics["mAP"] <= 100 * (12 + 4 * best) / 16
    assert metrics["mAP_released"] < metrics["mAP"]


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    from plip.checkpoint import save_checkpoint, save_released
    from plip.config import create_model

    torch.manual_seed(0)
    model = create_model("RN-tiny", tic={"weight": 0}, iap={"weight": 0})
    folder = tmp_path_factory.mktemp("checkpoints")
    save_released(model, folder / "tiny.pth.tar")
    return save_checkpoint(folder / "ours", model), folder / "tiny.pth.tar"


def test_cli_end_to_end_with_our_and_released_checkpoints(dataset, tiny_checkpoints, tmp_path, capsys):
    ours, released = tiny_checkpoints
    common = ["--dataset", "CUHK-PEDES", "--root", str(dataset), "--device", "cpu", "--batch-size", "3", "--quiet"]
    assert cli_main(["--checkpoint", str(ours), "--json", str(tmp_path / "a.json"), "--map", "released", *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("R@1 ") and "mAP(standard)" in out and "mAP(released, trapezoid)" in out
    assert cli_main(["--checkpoint", str(released), "--model", "RN-tiny", "--json", str(tmp_path / "b.json"),
                     *common]) == 0
    a, b = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert a["metrics"]["queries"] == 16 and 0 <= a["metrics"]["R@1"] <= 100
    assert a["metrics"] == pytest.approx(b["metrics"])  # same weights through both formats
    assert a["settings"]["map_variant"] == "released" and b["settings"]["split"] == "test"


@pytest.mark.parametrize("args, message", [
    (["--dataset", "CUHK-PEDES", "--root", "{missing}"], "--root {missing}: not a folder"),
    (["--dataset", "ICFG-PEDES", "--root", "{dataset}"], "neither ICFG-PEDES-test.json nor ICFG_PEDES.json"),
    (["--dataset", "shards", "--root", "{dataset}"], "--dataset shards needs --identities"),
    (["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--identities", "1-2"], "applies only to --dataset shards"),
    (["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--checkpoint", "{garbage}", "--model", "RN-tiny"],
     "not a readable torch checkpoint"),
    (["--dataset", "CUHK-PEDES", "--root", "{dataset}", "--device", "tpu"], "--device must be cpu, cuda"),
])
def test_bad_input_is_one_line_exit_2(dataset, tmp_path, capsys, args, message):
    garbage = tmp_path / "model.pth.tar"
    garbage.write_bytes(b"not a checkpoint")
    values = {"missing": tmp_path / "nope", "dataset": dataset, "garbage": garbage}
    argv = [a.format(**values) for a in args] + ["--quiet"]
    if "--checkpoint" not in argv:
        argv += ["--checkpoint", str(garbage)]
    assert run_main("python -m plip.zero_shot", cli_main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message.format(**values) in err[0]


def test_held_out_identities_of_real_shards(tmp_path):
    from PIL import Image

    from shards import GROUPS, encode_image, make_sample, write_shard

    samples = []
    for identity in range(4):
        for n in range(2):
            name = NAMES[identity]
            record = {"key": f"p{identity}_{n}", "id": identity, "file_path": f"Part1/{identity}/{n}.jpg",
                      "attributes": {g: {"value": "unknown", "confidence": 0.5} for g in GROUPS},
                      "captions": [f"a {name} coat", f"dressed in {name}"], "styles": ["a", "b"],
                      "prompt_caption": [f"the person wears {name}"], "source": f"raw/{identity}_{n}.png"}
            samples.append(make_sample(record, encode_image(Image.new("RGB", (32, 64), COLOURS[identity]))))
    write_shard(str(tmp_path), 0, samples[:4])
    write_shard(str(tmp_path), 1, samples[4:])
    from plip.eval_data import eval_set_from_shards, parse_identities

    queries, gallery = eval_set_from_shards(str(tmp_path), parse_identities("1-2"))
    assert sorted(set(gallery.ids)) == [1, 2] and len(gallery) == 4 and len(queries) == 12
    metrics = evaluate(ColourModel(), queries, gallery, batch_size=3)
    assert (metrics["R@1"], metrics["mAP"], metrics["queries"]) == (100.0, 100.0, 12)
