"""Rendered people as predictor examples: seed ranges, determinism, a sequence a DataLoader can index."""

import pytest

from spac.attributes import UNKNOWN, load_schema
from spac.render.training_source import (
    EVAL_SEED_BASE,
    MAX_SEED,
    TRAIN_STRIDE,
    RenderedPeople,
    evaluation_people,
    render_example,
    training_people,
)

SCHEMA = load_schema()


def test_evaluation_identities_never_overlap_training_identities():
    assert EVAL_SEED_BASE > (MAX_SEED - 1) * TRAIN_STRIDE + (TRAIN_STRIDE - 1)
    assert training_people(MAX_SEED - 1, 3).first_seed + 2 < evaluation_people(1).first_seed


def test_examples_are_images_with_their_visible_attributes_and_repeatable():
    people = training_people(4, 3, SCHEMA)
    assert len(people) == 3
    image, visible = people[1]
    assert image.size == (128, 256) and image.mode == "RGB"
    assert list(visible) == list(SCHEMA.group_names)
    assert SCHEMA.validate(visible) == visible
    again, visible_again = training_people(4, 3, SCHEMA)[1]
    assert again.tobytes() == image.tobytes() and visible_again == visible
    assert people[-2][0].tobytes() == image.tobytes()
    assert training_people(5, 3, SCHEMA)[1][0].tobytes() != image.tobytes()
    assert render_example(people.first_seed + 1, SCHEMA)[0].tobytes() == image.tobytes()


def test_identities_differ_from_one_index_to_the_next():
    people = evaluation_people(6, SCHEMA)
    genders = {people[i][1]["gender"] for i in range(len(people))}
    uppers = {people[i][1]["upper"] for i in range(len(people))}
    assert len(uppers - {UNKNOWN}) >= 4 and genders <= {"man", "woman", UNKNOWN}


def test_out_of_range_index_and_bad_arguments_are_refused():
    people = RenderedPeople(0, 2, SCHEMA)
    with pytest.raises(IndexError):
        people[2]
    assert len(list(people)) == 2  # iteration stops at the end, as for any sequence
    with pytest.raises(ValueError, match=rf"training seed must be in \[0, {MAX_SEED}\)"):
        training_people(MAX_SEED, 1)
    with pytest.raises(ValueError, match="identities"):
        training_people(0, TRAIN_STRIDE + 1)
    with pytest.raises(ValueError, match="count must be >= 0"):
        RenderedPeople(0, -1)
