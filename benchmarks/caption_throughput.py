"""Captions/s of spac.captioning.captioner against str.format filling the same number of texts, in one process.

    python benchmarks/caption_throughput.py [--sets 4000] [--rounds 7] [--profile]

Both sides get the same seeded random attribute sets (each group unknown with probability 0.3). The
captioner writes its 2-3 texts per set; the limit fills one fixed six-slot sentence with str.format as many
times. One process, one core: the rates are captions/s per core. The captioner also gives each text's
attribute spans (spac.captioning.compiled), included here. ``--profile`` prints the captioner's cProfile top
functions instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics

from bench_common import alternate, report

from spac.attributes import UNKNOWN, load_schema
from spac.captioning.captioner import Captioner

TEMPLATE = "A {gender} with {hair} wears {upper}, {lower} and {shoes}, carrying {belongings}."
TARGET_PER_CORE = 50_000
TARGET_RATIO = 0.1  # issue 22: >= 0.1x of str.format on the same machine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=4000, help="random attribute sets per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--p-unknown", type=float, default=0.3)
    parser.add_argument("--profile", action="store_true", help="cProfile the captioner instead")
    args = parser.parse_args()
    schema = load_schema()
    captioner = Captioner(schema)
    rng = random.Random(0)
    sets = [
        {g.name: UNKNOWN if rng.random() < args.p_unknown else rng.choice(g.values).phrase for g in schema.groups}
        for _ in range(args.sets)
    ]
    keys = [f"bench-{i:06d}" for i in range(args.sets)]
    per_set = sum(len(captioner(a, k)) for a, k in zip(sets, keys)) / args.sets

    def captions() -> int:
        return sum(len(captioner(attrs, key)) for attrs, key in zip(sets, keys))

    def formatted() -> int:
        n = 0
        for attrs in sets:
            for _ in range(round(per_set)):
                TEMPLATE.format(**attrs)
                n += 1
        return n

    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(captions)
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
        return
    rates = alternate({"spac.captioning.captioner": captions, "str.format fill": formatted}, args.rounds)
    report(
        f"captions/s per core ({args.sets} attribute sets, {per_set:.2f} texts each)",
        rates,
        "spac.captioning.captioner",
        "str.format fill",
        TARGET_RATIO,
        "captions/s",
    )
    speed = statistics.median(rates["spac.captioning.captioner"])
    print(
        f"  ABSOLUTE spac.captioning.captioner: {speed:,.0f} captions/s per core (target >= {TARGET_PER_CORE:,}: "
        f"{'meets' if speed >= TARGET_PER_CORE else 'below'})"
    )


if __name__ == "__main__":
    main()
