import pytest
import torch

from plip.programs.eval_data import load_eval_split
from plip.retrieval import evaluate, gallery_loader, text_batches
from plip.transforms import EVAL_MEAN, EVAL_STD
from tests.plip.pedes_fixtures import COLOURS, ColourModel, dataset_fixture, make_entries, write_dataset

SPLITS = {0: "train", 1: "test", 2: "test", 3: "test", 4: "test"}


dataset = dataset_fixture(SPLITS)


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


def test_loaders_batch_in_order(tmp_path):
    write_dataset(tmp_path, make_entries({0: "train", 1: "test", 2: "test", 3: "val"}))
    queries, gallery = load_eval_split("CUHK-PEDES", tmp_path, "test")
    batches = list(gallery_loader(gallery, batch_size=3))
    assert [b.shape[0] for b in batches] == [3, 1]
    blue = torch.tensor([(c / 255 - m) / s for c, m, s in zip(COLOURS[2], EVAL_MEAN, EVAL_STD)])
    assert torch.allclose(batches[1][0, :, 10, 10], blue, atol=0.1)  # JPEG shifts colours a little
    assert [len(b) for b in text_batches(queries, 5)] == [5, 3]


def test_a_refused_batch_size():
    with pytest.raises(ValueError, match="batch_size must be positive"):
        evaluate(ColourModel(), None, None, batch_size=0)
