"""The `spac` command: dispatches `spac <command> ...` to the module that implements the command."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from common.cli import run_main

DEBUG_FLAG = "--debug"

# command -> (module, one-line help). Each module exposes `cli_main(argv) -> int`.
COMMANDS: dict[str, tuple[str, str]] = {
    "caption": ("spac.cli.caption", "caption pedestrian images (attributes -> 2-3 stylish captions)"),
    "render": ("spac.cli.render", "render labelled demo pedestrians (procedural, with ground truth)"),
    "train-attributes": (
        "spac.cli.train_attributes",
        "train an attribute predictor (rendered people, PA-100K, PETA, RAP, mined labels)",
    ),
    "train-captioner": (
        "spac.cli.train_captioner",
        "train the neural SPAC captioner (two style encoders, GPT-2) on the captions of corpora",
    ),
    "eval-attributes": ("spac.cli.eval_attributes", "score an attribute predictor: mA, instance metrics, per group"),
    "shards": ("spac.cli.verify_shards", "verify a corpus folder or (re)write its manifest.json"),
    "mine-schema": ("spac.cli.mine_schema", "report the noun phrases of human captions and what the schema covers"),
    "mine-labels": ("spac.cli.mine_labels", "mine attribute labels from human captions into a parquet table"),
    "mine-templates": ("spac.cli.mine_templates", "mine a masked sentence library from human captions"),
    "migrate-predictor": ("spac.cli.migrate_predictor", "carry a predictor over to the current attribute schema"),
    "report": ("spac.cli.report", "write an HTML page about a corpus: contact sheet, plots, job counters"),
}


def _usage() -> str:
    lines = ["usage: spac [--debug] <command> [options]", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += [
        "",
        "options:",
        f"  {DEBUG_FLAG:<18} show the traceback of a bad-input error too (as SPAC_DEBUG=1 does);",
        f"  {'':<18} an error in spac itself always shows its traceback",
        "\n`spac <command> --help` explains each command's flags.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = args[:1] == [DEBUG_FLAG]
    args = args[debug:]
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"spac: error: unknown command {name!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return run_main(f"spac {name}", module.cli_main, rest, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
