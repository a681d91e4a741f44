"""Rendered people as the attribute predictor's examples: (image, visible attributes), one fresh identity each.

Training identity k of seed s has the identity seed ``s * TRAIN_STRIDE + k``; evaluation identities start
at ``EVAL_SEED_BASE``, above every training identity of every allowed seed, so an evaluation measures
generalisation to people training never saw. The labels are what the renderer reports as visible.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from PIL import Image

from common.digests import stable_int
from common.errors import InputError
from spac.attributes import Schema, load_schema
from spac.render.identity import random_identity
from spac.render.person import render_person

TRAIN_STRIDE = 2**32
MAX_SEED = 2**24
EVAL_SEED_BASE = MAX_SEED * TRAIN_STRIDE


def render_example(identity_seed: int, schema: Schema) -> tuple[Image.Image, dict[str, str]]:
    """One rendered person for an identity seed: (image, visible attributes)."""
    # Identity and scene each get their own derived seed: a shared seed would tie the first random draws
    # of the scene (pose, mirroring) to the identity's gender, and a model would learn that instead.
    attributes = random_identity(random.Random(stable_int(identity_seed, "identity")), schema)
    return render_person(attributes, seed=stable_int(identity_seed, "scene"))


class RenderedPeople(Sequence):
    """``count`` people with consecutive identity seeds from ``first_seed``, rendered when indexed.

    A sequence (not a stream) so a DataLoader can fetch any index from any worker in a fixed order.
    """

    def __init__(self, first_seed: int, count: int, schema: Schema | None = None) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.first_seed, self.count, self.schema = first_seed, count, schema or load_schema()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> tuple[Image.Image, dict[str, str]]:  # type: ignore[override]
        if not -self.count <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} people")
        return render_example(self.first_seed + index % self.count, self.schema)


def training_people(seed: int, count: int, schema: Schema | None = None) -> RenderedPeople:
    """The first ``count`` training identities of ``seed`` (0 <= seed < MAX_SEED)."""
    if not 0 <= seed < MAX_SEED:
        raise InputError(f"training seed must be in [0, {MAX_SEED}), got {seed}")
    if count > TRAIN_STRIDE:
        raise InputError(f"a training seed has {TRAIN_STRIDE} identities, {count} were asked for")
    return RenderedPeople(seed * TRAIN_STRIDE, count, schema)


def evaluation_people(count: int, schema: Schema | None = None) -> RenderedPeople:
    """``count`` held-out identities, the same for every training seed."""
    return RenderedPeople(EVAL_SEED_BASE, count, schema)
