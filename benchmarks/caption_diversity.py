"""How varied are SPAC's captions? Prints, over N seeded random attribute sets:

- the number of distinct texts among all texts written (and per style);
- the mean pairwise word overlap (Jaccard of lower-cased word sets) between the texts of one image,
  a proxy for how differently the 2-3 texts of one image are phrased (lower = more different);
- texts per image and captioning speed;
- the spac.language round trip: over every text, the known values read back and the stray mentions
  (a mention of an unknown group, or one that reads as another value of its group).

Attribute sets: each group unknown with probability --p-unknown, else a uniform schema value.
Run: python benchmarks/caption_diversity.py [--n 10000] [--seed 0] [--p-unknown 0.3]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import Counter, defaultdict
from itertools import combinations

from spac.attributes import UNKNOWN, Schema, load_schema
from spac.captioning.captioner import Captioner
from spac.language import extract_attributes_batch


def random_attributes(rng: random.Random, schema: Schema, p_unknown: float) -> dict[str, str]:
    return {g.name: UNKNOWN if rng.random() < p_unknown else rng.choice(g.values).phrase for g in schema.groups}


def jaccard(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"[\w-]+", a.lower())), set(re.findall(r"[\w-]+", b.lower()))
    return len(wa & wb) / len(wa | wb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of random attribute sets")
    parser.add_argument("--seed", type=int, default=0, help="seed of the attribute sampler")
    parser.add_argument("--p-unknown", type=float, default=0.3, help="probability that a group is unknown")
    args = parser.parse_args()

    schema = load_schema()
    captioner = Captioner(schema)
    rng = random.Random(args.seed)
    sets = [random_attributes(rng, schema, args.p_unknown) for _ in range(args.n)]

    start = time.perf_counter()
    results = [captioner(attrs, key=f"bench-{i:06d}") for i, attrs in enumerate(sets)]
    seconds = time.perf_counter() - start

    all_texts = [c.text for captions in results for c in captions]
    by_style: dict[str, set[str]] = defaultdict(set)
    for captions in results:
        for c in captions:
            by_style[c.style].add(c.text)
    overlaps = [jaccard(a.text, b.text) for captions in results for a, b in combinations(captions, 2)]
    counts = Counter(len(captions) for captions in results)

    print(f"attribute sets: {args.n} (p_unknown={args.p_unknown}, seed={args.seed})")
    print(f"texts written: {len(all_texts)}  ({len(all_texts) / args.n:.3f} per image; {dict(sorted(counts.items()))})")
    print(f"distinct texts: {len(set(all_texts))}  ({len(set(all_texts)) / len(all_texts):.2%} of all)")
    for style, texts in sorted(by_style.items()):
        print(f"  distinct {style:<11} texts: {len(texts)}")
    print(
        f"mean pairwise word Jaccard within one image: {sum(overlaps) / len(overlaps):.3f} over {len(overlaps)} pairs"
    )
    print(f"captioning speed: {args.n / seconds:.0f} images/s ({seconds:.2f} s)")

    rows = [(attrs, c.text) for attrs, captions in zip(sets, results) for c in captions]
    recovered = expected = stray = 0
    for (attrs, _), mentions in zip(rows, extract_attributes_batch([text for _, text in rows], schema)):
        known = {g: v for g, v in attrs.items() if v != UNKNOWN}
        expected += len(known)
        recovered += sum(any(m.value == v for m in mentions) for v in known.values())
        stray += sum(m.group not in known or (m.value is not None and m.value != known[m.group]) for m in mentions)
    print(
        f"round trip (spac.language): {recovered}/{expected} known values read back "
        f"({recovered / max(expected, 1):.2%}), {stray} stray mentions over {len(rows)} texts"
    )


if __name__ == "__main__":
    main()
