"""Training inputs for the pre-training tests: shards of rendered, captioned people and a tiny text model.

The shards are written with ``shards.write_shard`` straight from ``spac.render`` images and their
ground-truth attributes (``spac.captioning.captioner`` texts), so these tests do not depend on the Beam job.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from transformers import BertConfig, BertModel

from plip.config import MINILM, TextConfig
from plip.text_encoder import load_tokenizer
from shards import GROUPS, encode_image, make_sample, open_corpus, shard_urls, write_manifest, write_shard
from shards.sample import record_texts
from spac.captioning.captioner import caption
from spac.render import render_dataset
from tests.plip._tiny_model import TINY_BERT

TINY_VISION = {"layers": [1, 1, 1, 1], "width": 8, "heads": 2, "output_dim": 32, "image_size": [64, 32]}
TINY_HEADS = {"tic": {"channels": 16, "se_reduction": 4}, "iap": {"heads": 2}}


def write_rendered_corpus(
    folder: Path, identities: int, images_per_identity: int, shards: int, seed: int = 0, first_identity: int = 0
) -> Path:
    """Render people, caption their visible attributes and write ``shards`` shards + manifest into ``folder``."""
    images = folder.parent / f"{folder.name}-images"
    labels = render_dataset(images, identities, images_per_identity, seed=seed)
    samples = []
    for label in labels:
        identity = label["id"] + first_identity
        key = f"p{identity:05d}_{Path(label['file_path']).stem}"
        texts = caption(label["visible"], key, seed=seed)
        record = {
            "key": key,
            "id": identity,
            "file_path": f"Part1/{identity}/{Path(label['file_path']).name}",
            "attributes": {g: {"value": label["visible"][g], "confidence": 1.0} for g in GROUPS},
            "captions": [c.text for c in texts if c.style != "template"],
            "styles": [c.style for c in texts if c.style != "template"],
            "prompt_caption": [c.text for c in texts if c.style == "template"],
            "source": label["file_path"],
        }
        with Image.open(images / label["file_path"]) as image:
            samples.append(make_sample(record, encode_image(image)))
    per_shard = -(-len(samples) // shards)
    for index in range(shards):
        write_shard(str(folder), index, samples[index * per_shard : (index + 1) * per_shard])
    write_manifest(str(folder))
    return folder


def write_damaged_copy(source: Path, folder: Path) -> str:
    """Copy the corpus at ``source`` into ``folder`` with the jpg of shard 0's first sample cut in half (a
    truncated JPEG: its header still reads, its pixels do not); return that sample's key."""
    damaged = None
    for index, url in enumerate(shard_urls(str(source))):
        raw = open_corpus(url, decode=False, split_by_node=False, split_by_worker=False)
        samples = [{"__key__": s["__key__"], "jpg": s["jpg"], "json": json.loads(s["json"])} for s in raw]
        if index == 0:  # the shard keeps its samples in key order: this one is read first
            damaged = samples[0]["__key__"]
            samples[0]["jpg"] = samples[0]["jpg"][: len(samples[0]["jpg"]) // 2]
        write_shard(str(folder), index, samples)
    write_manifest(str(folder))
    return damaged


def write_copy_with_spans(source: Path, folder: Path) -> Path:
    """Copy the corpus at ``source`` into ``folder`` with every record's ``attribute_spans`` added (what the
    synthesis job writes now), the records otherwise the same."""
    from spac.language import attribute_spans

    for index, url in enumerate(shard_urls(str(source))):
        raw = open_corpus(url, decode=False, split_by_node=False, split_by_worker=False)
        samples = [{"__key__": s["__key__"], "jpg": s["jpg"], "json": json.loads(s["json"])} for s in raw]
        for sample in samples:
            spans = attribute_spans(record_texts(sample["json"]))
            sample["json"]["attribute_spans"] = [[list(span) for span in text_spans] for text_spans in spans]
        write_shard(str(folder), index, samples)
    write_manifest(str(folder))
    return folder


def write_tiny_text_model(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised 1-layer BERT (32 hidden) with MiniLM's WordPiece tokenizer, saved like a hub model."""
    import torch

    torch.manual_seed(seed)
    BertModel(BertConfig(**TINY_BERT)).save_pretrained(str(folder))
    load_tokenizer(TextConfig(name_or_path=MINILM)).save_pretrained(str(folder))
    return folder


def tiny_flags(text_model: Path, image_size: tuple[int, int] = (64, 32)) -> list[str]:
    """Flags of a seconds-fast run: tiny vision network (64x32 unless the evaluation's 256x128 is needed)
    and the tiny text model."""
    import json

    vision = {**TINY_VISION, "image_size": list(image_size)}
    overrides = {"vision": vision, "text": {"pooling": "pooler"}, **TINY_HEADS}
    return [
        "--preset",
        "RN-tiny",
        "--text-model",
        str(text_model),
        "--model-overrides",
        json.dumps(overrides),
        "--threads",
        "1",
        "--quiet",
    ]
