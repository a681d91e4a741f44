"""The flags every program that reads a checkpoint shares: how to build a released-format file's model."""

from __future__ import annotations

import argparse


def add_released_format_flags(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--tokenizer``: what a released ``.pth.tar`` file does not say about itself."""
    parser.add_argument(
        "--model",
        default="RN50",
        help="released-format files only: the architecture preset in plip/configs (default RN50)",
    )
    parser.add_argument(
        "--tokenizer",
        help="released-format files only: local tokenizer folder (default: the "
        "bundled bert-base-uncased WordPiece vocabulary)",
    )
