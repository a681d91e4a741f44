"""The SYNTH-PEDES corpus filters of the PLIP paper, as pure functions over predicted attributes.

Per image: drop it when ``max_unknown`` or more groups are unknown, or when upper AND lower are both
unknown. Per identity (on the images that survived): a gender vote (the most common known gender is
applied to every image when its share of the identity's images exceeds ``gender_vote``, otherwise the
identity is dropped), then a minimum image count, then a cap chosen deterministically by
sha256(key + seed) instead of the paper's random choice. Every dropped image gets a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from common.digests import stable_hex
from common.errors import InputError
from spac.attributes import UNKNOWN

# Reasons a record is dropped; also the keys of the pipeline's filter report.
TOO_MANY_UNKNOWN = "too_many_unknown"
UPPER_AND_LOWER_UNKNOWN = "upper_and_lower_unknown"
GENDER_VOTE_FAILED = "gender_vote_failed"
TOO_FEW_IMAGES = "too_few_images"
OVER_IDENTITY_CAP = "over_identity_cap"
REASONS = (TOO_MANY_UNKNOWN, UPPER_AND_LOWER_UNKNOWN, GENDER_VOTE_FAILED, TOO_FEW_IMAGES, OVER_IDENTITY_CAP)


@dataclass(frozen=True)
class FilterConfig:
    """The paper's thresholds (the defaults) and the seed of the deterministic per-identity cap."""

    max_unknown: int = 3
    gender_vote: float = 0.7
    min_images: int = 5
    max_images: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_unknown < 1:
            raise InputError(f"max_unknown must be at least 1, got {self.max_unknown}")
        if not 0.0 <= self.gender_vote < 1.0:
            raise InputError(f"gender_vote must be in [0, 1), got {self.gender_vote}")
        if self.min_images < 1:
            raise InputError(f"min_images must be at least 1, got {self.min_images}")
        if self.max_images < self.min_images:
            raise InputError(f"max_images ({self.max_images}) must be at least min_images ({self.min_images})")


@dataclass(frozen=True)
class IdentityVerdict:
    """What the identity-level filters decided: kept key -> attributes (gender voted), dropped key -> reason."""

    kept: dict[str, dict[str, str]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


def reason_kind(reason: str) -> str:
    """A dead-letter reason without its particulars (``image too large: 9000x9000 ...`` -> ``image too large``):
    what the job's filter report and ``spac report`` count letters under, one row per kind, not per file."""
    return reason.split(":", 1)[0].strip()


def image_rejection(attributes: Mapping[str, str], max_unknown: int = 3) -> str | None:
    """The reason to drop one image on its own attributes, or None to keep it."""
    if sum(value == UNKNOWN for value in attributes.values()) >= max_unknown:
        return TOO_MANY_UNKNOWN
    if attributes.get("upper", UNKNOWN) == UNKNOWN and attributes.get("lower", UNKNOWN) == UNKNOWN:
        return UPPER_AND_LOWER_UNKNOWN
    return None


def vote_gender(genders: Sequence[str], threshold: float = 0.7) -> str | None:
    """The identity's gender when the most common known one exceeds ``threshold`` of ALL its images.

    Unknown genders count in the denominator (they are images the vote must speak for); a tie has no winner.
    """
    counts = Counter(g for g in genders if g != UNKNOWN).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    winner, votes = counts[0]
    return winner if votes / len(genders) > threshold else None


def filter_identity(images: Mapping[str, Mapping[str, str]], config: FilterConfig = FilterConfig()) -> IdentityVerdict:
    """Apply the identity-level filters to one identity's surviving images (key -> attributes)."""
    keys = sorted(images)
    if not keys:
        return IdentityVerdict()
    gender = vote_gender([images[k].get("gender", UNKNOWN) for k in keys], config.gender_vote)
    if gender is None:
        return IdentityVerdict(dropped={k: GENDER_VOTE_FAILED for k in keys})
    if len(keys) < config.min_images:
        return IdentityVerdict(dropped={k: TOO_FEW_IMAGES for k in keys})
    chosen = set(sorted(keys, key=lambda k: stable_hex(k, config.seed))[: config.max_images])
    kept = {k: {**images[k], "gender": gender} for k in keys if k in chosen}
    return IdentityVerdict(kept=kept, dropped={k: OVER_IDENTITY_CAP for k in keys if k not in chosen})
