"""The SYNTH-PEDES sample: what one corpus entry holds, how its image is encoded, how its record is checked.

A sample is three tar members (:data:`MEMBERS`) sharing a key: ``<key>.jpg``, ``<key>.json``, ``<key>.txt``.

- ``__key__``: 1-90 characters from ``[A-Za-z0-9_-]``. No dots (WebDataset and Hugging Face split the
  member name at the first dot) and no slashes (one flat folder of members in every reader).
- ``jpg``: every image is re-encoded by :func:`encode_image`: EXIF orientation applied, converted to
  RGB, resized (bicubic, aspect not kept, as PLIP's own transform does) to 256x128 (height x width),
  baseline JPEG at quality 90 with Pillow. One fixed size keeps training decode cheap and the bytes
  deterministic for the same input and Pillow version; the original file is named by ``source``.
- ``json``: the record (:data:`RECORD_FIELDS`), written in that field order and with the groups in
  :data:`GROUPS` order so the same content always gives the same bytes:

  ``key`` (str, == ``__key__``), ``id`` (int identity, >= 0), ``file_path`` (released-style relative
  path, e.g. ``Part1/7/1.jpg``), ``attributes`` (``{group: {"value": str, "confidence": float | None}}``
  for all six groups, ``"unknown"`` allowed), ``captions`` (style captions), ``styles`` (one style name
  per caption), ``prompt_caption`` (zero or one library sentence), ``source`` (original path or URI);
  then the optional fields (:data:`OPTIONAL_FIELDS`), in that order, when the record has them:
  ``attribute_spans`` (one list per text of :func:`record_texts`, i.e. ``captions`` then ``prompt_caption``, of
  ``[start, end]`` character spans, ``0 <= start < end <= len(text)``: the attribute phrases that
  ``spac.language`` finds in it, which IAP masks; training computes them itself for a record without
  the field, as for every corpus written before it existed); ``caption_model`` (the name or path of the
  vision-language model that wrote the ``mllm:`` styled captions, as job.json's ``generator.model`` gives it;
  only in a corpus written with ``--captioner mllm``).

  An attribute's ``confidence`` is the predictor's, in [0, 1], or ``null`` for a value no predictor of
  ours gave (imported from a released corpus, mined from human captions). A value imported from a
  released corpus is kept verbatim, even outside our schema, and its entry has a third key
  ``in_schema`` (bool; the importer writes it on every entry of such a corpus, so all samples of a
  corpus share one shape); values of our predictor or label miner are the schema's by construction and
  have no such key. This module does not know the schema, so it checks only the key's type; nor does it
  know spac.language, so it checks the spans' shape, not that they are the phrases.
- ``txt``: the first text of the sample: ``captions[0]``, or ``prompt_caption[0]`` when there is no
  style caption. A record must carry at least one text.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping
from typing import Any

from PIL import Image, ImageOps

from common.errors import InputError

GROUPS = ("gender", "hair", "upper", "lower", "shoes", "belongings")
MEMBERS = ("jpg", "json", "txt")  # tar members of a sample, after __key__
RECORD_FIELDS = ("key", "id", "file_path", "attributes", "captions", "styles", "prompt_caption", "source")
OPTIONAL_FIELDS = ("attribute_spans", "caption_model")  # written after RECORD_FIELDS, in this order, when present
ENTRY_KEYS = frozenset({"value", "confidence"})  # of one group's attribute entry
IN_SCHEMA_KEY = "in_schema"  # optional third key (bool) of an imported attribute entry
IMAGE_SIZE = (256, 128)  # height, width
JPEG_QUALITY = 90
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,90}")
MEMBER_NAME_RULE = "expected <key>.jpg, .json or .txt with a key of 1-90 characters from [A-Za-z0-9_-]"
_JPEG_MAGIC = b"\xff\xd8\xff"


def encode_image(image: Image.Image) -> bytes:
    """The corpus JPEG for one person image: upright, RGB, 256x128, quality 90."""
    upright = ImageOps.exif_transpose(image).convert("RGB")
    height, width = IMAGE_SIZE
    resized = upright.resize((width, height), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    resized.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return buffer.getvalue()


def is_jpeg(data: bytes) -> bool:
    return bytes(data[:3]) == _JPEG_MAGIC


def validate_key(key: Any) -> str:
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise InputError(f"key {key!r}: expected 1-90 characters from [A-Za-z0-9_-]")
    return key


def split_member_name(name: str) -> tuple[str, str]:
    """(key, member) of a sample's tar member name ``<key>.<member>``; InputError for any other name
    (a path such as ``../x`` or ``/etc/x``, a key outside :data:`KEY_PATTERN`, a member not in :data:`MEMBERS`)."""
    key, _, member = name.partition(".")
    if member not in MEMBERS or not KEY_PATTERN.fullmatch(key):
        raise InputError(f"member name {name!r}: {MEMBER_NAME_RULE}")
    return key, member


def _strings(record: Mapping[str, Any], field: str) -> list[str]:
    value = record[field]
    if not isinstance(value, list) or not all(isinstance(s, str) and s.strip() for s in value):
        raise InputError(f"record {record.get('key')!r}: field {field!r}: expected a list of non-empty strings")
    return value


def _where(record: Mapping[str, Any], field: str) -> str:
    """The start of an error message about ``field`` (built only when a check fails: the reader checks
    every record it decodes)."""
    return f"record {record.get('key')!r}: field {field!r}"


def _attributes(record: Mapping[str, Any]) -> None:
    attributes = record["attributes"]
    if not isinstance(attributes, dict) or set(attributes) != set(GROUPS):
        raise InputError(f"{_where(record, 'attributes')}: expected exactly the groups {', '.join(GROUPS)}")
    for group in GROUPS:
        entry = attributes[group]
        if not isinstance(entry, dict) or set(entry) not in (ENTRY_KEYS, {*ENTRY_KEYS, IN_SCHEMA_KEY}):
            raise InputError(
                f"{_where(record, 'attributes')}.{group}: expected {{'value': str, 'confidence': "
                f"float or null}} (and '{IN_SCHEMA_KEY}': bool for an imported value)"
            )
        if not isinstance(entry["value"], str) or not entry["value"].strip() or "," in entry["value"]:
            raise InputError(
                f"{_where(record, 'attributes')}.{group}.value: expected a non-empty phrase without commas"
            )
        if IN_SCHEMA_KEY in entry and not isinstance(entry[IN_SCHEMA_KEY], bool):
            raise InputError(
                f"{_where(record, 'attributes')}.{group}.{IN_SCHEMA_KEY}: expected true or false, "
                f"got {entry[IN_SCHEMA_KEY]!r}"
            )
        confidence = entry["confidence"]
        if confidence is None:
            continue
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 <= confidence <= 1.0:
            raise InputError(
                f"{_where(record, 'attributes')}.{group}.confidence: expected a number in [0, 1], got {confidence!r}"
            )
        if isinstance(confidence, float) and math.isnan(confidence):
            raise InputError(f"{_where(record, 'attributes')}.{group}.confidence: NaN")


def validate_record(record: Any) -> None:
    """Raise InputError naming the first field of ``record`` that breaks the sample contract."""
    if not isinstance(record, dict):
        raise InputError(f"record: expected a dict, got {type(record).__name__}")
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        raise InputError(f"record {record.get('key')!r}: missing field {missing[0]!r}")
    extra = sorted(set(record) - set(RECORD_FIELDS) - set(OPTIONAL_FIELDS))
    if extra:
        raise InputError(f"record {record.get('key')!r}: unexpected field {extra[0]!r}")
    try:
        validate_key(record["key"])
    except ValueError as exc:
        raise InputError(f"record: field 'key': {exc}") from None
    identity = record["id"]
    if isinstance(identity, bool) or not isinstance(identity, int) or identity < 0:
        raise InputError(f"{_where(record, 'id')}: expected an integer >= 0, got {identity!r}")
    for field in ("file_path", "source"):
        if not isinstance(record[field], str) or not record[field].strip():
            raise InputError(f"{_where(record, field)}: expected a non-empty string")
    if record["file_path"].startswith("/") or "\\" in record["file_path"]:
        raise InputError(f"{_where(record, 'file_path')}: expected a relative path with '/' separators")
    _attributes(record)
    captions, styles = _strings(record, "captions"), _strings(record, "styles")
    if len(styles) != len(captions):
        raise InputError(f"{_where(record, 'styles')}: {len(styles)} styles for {len(captions)} captions")
    prompt = _strings(record, "prompt_caption")
    if len(prompt) > 1:
        raise InputError(f"{_where(record, 'prompt_caption')}: expected at most one sentence, got {len(prompt)}")
    if not captions and not prompt:
        raise InputError(f"{_where(record, 'captions')}: a record needs at least one caption or prompt_caption")
    if "attribute_spans" in record:
        _attribute_spans(record, captions + prompt)
    if "caption_model" in record and (
        not isinstance(record["caption_model"], str) or not record["caption_model"].strip()
    ):
        raise InputError(f"{_where(record, 'caption_model')}: expected a non-empty string")


def _attribute_spans(record: Mapping[str, Any], texts: list[str]) -> None:
    spans = record["attribute_spans"]
    if not isinstance(spans, list) or len(spans) != len(texts):
        raise InputError(
            f"{_where(record, 'attribute_spans')}: expected one list of spans per text (captions, "
            f"then prompt_caption), {len(texts)} in all"
        )
    for index, (text, text_spans) in enumerate(zip(texts, spans)):
        if not isinstance(text_spans, list):
            raise InputError(f"{_where(record, 'attribute_spans')}[{index}]: expected a list of [start, end] spans")
        for span in text_spans:
            # type() is int, not isinstance: a bool is an int too
            if not (isinstance(span, list) and len(span) == 2 and type(span[0]) is int and type(span[1]) is int):
                raise InputError(
                    f"{_where(record, 'attribute_spans')}[{index}]: expected [start, end] integer pairs, got {span!r}"
                )
            if not 0 <= span[0] < span[1] <= len(text):
                raise InputError(
                    f"{_where(record, 'attribute_spans')}[{index}]: span {span} is not inside the "
                    f"text ({len(text)} characters, start < end)"
                )


def canonical_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The validated record in the fixed field and group order, confidences as floats (or None)."""
    validate_record(record)
    canonical = {field: record[field] for field in RECORD_FIELDS}
    canonical["attributes"] = {group: _canonical_entry(record["attributes"][group]) for group in GROUPS}
    canonical["captions"] = list(record["captions"])
    canonical["styles"] = list(record["styles"])
    canonical["prompt_caption"] = list(record["prompt_caption"])
    if "attribute_spans" in record:
        canonical["attribute_spans"] = [[list(span) for span in spans] for spans in record["attribute_spans"]]
    if "caption_model" in record:
        canonical["caption_model"] = record["caption_model"]
    return canonical


def _canonical_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    confidence = entry["confidence"]
    canonical = {"value": entry["value"], "confidence": None if confidence is None else float(confidence)}
    if IN_SCHEMA_KEY in entry:
        canonical[IN_SCHEMA_KEY] = entry[IN_SCHEMA_KEY]
    return canonical


def record_texts(record: Mapping[str, Any]) -> list[str]:
    """Every text of the record, in the order ``attribute_spans`` follows: style captions, then the sentence."""
    return list(record["captions"]) + list(record["prompt_caption"])


def first_text(record: Mapping[str, Any]) -> str:
    """The sample's ``txt``: the first style caption, else the library sentence."""
    return record_texts(record)[0]


def released_attributes(record: Mapping[str, Any]) -> str:
    """The released SYNTH-PEDES form: the six values comma-joined in group order."""
    return ",".join(record["attributes"][group]["value"] for group in GROUPS)


def make_sample(record: Mapping[str, Any], jpg: bytes) -> dict[str, Any]:
    """A writable sample from a record and its corpus JPEG (see :func:`encode_image`)."""
    canonical = canonical_record(record)
    if not isinstance(jpg, (bytes, bytearray)) or not is_jpeg(jpg):
        raise InputError(f"record {canonical['key']!r}: jpg: expected JPEG bytes")
    return {"__key__": canonical["key"], "jpg": bytes(jpg), "json": canonical, "txt": first_text(canonical)}
