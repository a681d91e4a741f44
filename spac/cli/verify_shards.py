"""`spac shards verify DIR` / `spac shards manifest DIR`: check a corpus folder, or (re)write its manifest."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from common.cli import CliError, OneLineArgumentParser, add_quiet_flag
from shards import layout


def _parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(
        prog="spac shards",
        description="Tools for a SYNTH-PEDES corpus folder (WebDataset shards + parquet indexes + _stats.json). "
        "Folders may be local paths or fsspec URLs (gs://, s3://, memory://).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{verify,manifest}")
    verify = commands.add_parser(
        "verify",
        help="check every shard against its _stats.json, parquet index and manifest.json",
        description="Check every shard against its _stats.json (sha256, size, count), its parquet index (keys, "
        "JPEG hashes, member offsets, records) and manifest.json. Prints one line per problem; exit code 1 when "
        "there are problems, 0 when the corpus is sound.",
    )
    verify.add_argument("directory", help="corpus folder (local path or URL)")
    add_quiet_flag(verify)  # problems and the summary still print
    manifest = commands.add_parser(
        "manifest",
        help="collect the complete shards' _stats.json into manifest.json",
        description="Write manifest.json from the complete shards (those with a _stats.json marker).",
    )
    manifest.add_argument("directory", help="corpus folder (local path or URL)")
    manifest.add_argument("--prefix", default=layout.DEFAULT_PREFIX, help="shard name prefix (default: %(default)s)")
    return parser


def _verify(directory: str, quiet: bool) -> int:
    from tqdm import tqdm

    from shards.manifest import read_manifest
    from shards.verify import verify_corpus

    with tqdm(unit="shard", desc="verify", disable=quiet, file=sys.stderr) as bar:
        try:
            problems = verify_corpus(directory, progress=lambda name: bar.update(1))
        except FileNotFoundError:
            raise CliError(f"{directory}: no such corpus folder") from None
    for problem in problems:
        print(problem)
    if problems:
        print(f"FAILED: {len(problems)} problem(s) in {directory}")
        return 1
    totals = read_manifest(directory)["totals"]
    print(f"ok: {totals['shards']} shards, {totals['samples']} samples")
    return 0


def _manifest(directory: str, prefix: str) -> int:
    from shards.manifest import write_manifest

    totals = write_manifest(directory, prefix)["totals"]
    print(f"manifest.json: {totals['shards']} shards, {totals['samples']} samples, {totals['identities']} identities")
    return 0


def cli_main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "verify":
        return _verify(args.directory, args.quiet)
    return _manifest(args.directory, args.prefix)
