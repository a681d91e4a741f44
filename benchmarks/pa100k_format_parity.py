"""Rendered people written out in PA-100K format train to what the native rendered labels give, on what PA-100K
can say: render N people, train the same tiny predictor for the same steps on their native labels and on the
PA-100K files of the same images, score both on held-out rendered people (per-group accuracy on gender, upper,
lower, shoes, belongings as PA-100K labels them, and mA on PA-100K's mapped attributes).

usage: python benchmarks/pa100k_format_parity.py [N_TRAIN] [N_EVAL] [STEPS]
"""

import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, ".")
from tests.spac.predictor.datasets.pa100k_parity import compare  # noqa: E402

n_train, n_eval, steps = (int(a) for a in (sys.argv[1:] + ["2000", "500", "600"][len(sys.argv) - 1 :]))
torch.set_num_threads(1)  # a shared CPU: more threads only spin
with tempfile.TemporaryDirectory() as folder:
    result = compare(Path(folder), n_train=n_train, n_eval=n_eval, steps=steps)
for name in ("native", "pa100k"):
    r = result[name]
    groups = "  ".join(f"{g} {a:.3f}" for g, a in r["groups"].items())
    print(
        f"{name:<7} mean {r['mean_accuracy']:.3f}  mA {r['mA']:.3f}  F1 {r['f1']:.3f}  | {groups}  ({r['seconds']} s)"
    )
print(
    f"pa100k - native: mean accuracy {result['difference']['mean_accuracy']:+.3f}, mA {result['difference']['mA']:+.3f}"
)
print(json.dumps(result["settings"]))
