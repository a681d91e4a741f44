from collections import Counter

import pytest
import torch

from plip.programs.finetune_data import PairDataset, epoch_plan, load_train_entries, train_pairs
from plip.transforms import ImageReadError
from tests.plip.pedes_fixtures import dataset_fixture

SPLITS = {0: "train", 1: "train", 2: "train", 3: "train", 4: "test", 5: "val"}


dataset = dataset_fixture(SPLITS)


def test_train_pairs_map_identities_to_classes_and_plans_hold_several_pairs_per_identity(dataset):
    entries, _ = load_train_entries("CUHK-PEDES", dataset)
    pairs = train_pairs(entries, dataset / "imgs")
    assert len(pairs) == 16 and pairs.identities == (0, 1, 2, 3) and sorted(set(pairs.labels)) == [0, 1, 2, 3]
    labels = [i // 5 for i in range(5 * 7)] + [7]  # 7 identities of 5 pairs, one of a single pair
    plan = epoch_plan(labels, batch_size=6, pairs_per_id=2, seed=3, epoch=0)
    assert plan == epoch_plan(labels, batch_size=6, pairs_per_id=2, seed=3, epoch=0)
    assert plan != epoch_plan(labels, batch_size=6, pairs_per_id=2, seed=3, epoch=1)
    for batch in plan:
        counts = Counter(labels[i] for i in batch)
        assert len(batch) == 6 and len(counts) == 3 and set(counts.values()) == {2}
    # Whole chunks only, and a batch left open when the chunks run out is dropped: most pairs still train, on
    # average over seeds (a single plan may lose one batch).
    used = [len({i for batch in epoch_plan(labels, 6, 2, seed, 0) for i in batch}) for seed in range(20)]
    assert sum(used) / len(used) >= 0.75 * len(labels)
    with pytest.raises(ValueError, match="multiple of the pairs per identity"):
        epoch_plan(labels, batch_size=5, pairs_per_id=2, seed=0, epoch=0)


def test_a_pair_loads_as_a_flippable_tensor_and_an_unreadable_image_is_named(dataset, tmp_path):
    entries, _ = load_train_entries("CUHK-PEDES", dataset)
    pairs = PairDataset(train_pairs(entries, dataset / "imgs"), (64, 32))
    image, caption, label = pairs[(0, False)]
    flipped, _, _ = pairs[(0, True)]
    assert image.shape == (3, 64, 32) and caption == entries[0]["captions"][0] and label == 0
    assert torch.equal(flipped.flip(-1), image)
    broken = tmp_path / "imgs" / entries[0]["file_path"]
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="cannot read image"):
        PairDataset(train_pairs(entries[:1], tmp_path / "imgs"), (64, 32))[(0, False)]
