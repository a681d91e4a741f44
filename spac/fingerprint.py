"""What identifies a version of the SPAC method: the package, the attribute schema, the bundled templates
(vocabulary, sentence library, style modules) and the predictor's files. Two runs with the same
fingerprint caption the same images the same way; a corpus records it so a rerun never mixes versions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from common.digests import file_sha256
from spac.attributes import load_schema
from spac.predictor.model import CONFIG_FILE, DEFAULT_PREDICTOR_DIR, WEIGHTS_FILE

DISTRIBUTION = "spac-synthpedes"
_TEMPLATE_SUFFIXES = (".yaml", ".yml", ".json", ".txt")
# The caption model's prompts decide no template caption; a run that uses them records their own hashes
# (spac.generation.prompts.prompt_files_sha256), so adding or editing a prompt leaves template corpora as they were.
_NOT_TEMPLATE_FOLDERS = ("prompts",)


def package_version() -> str | None:
    """The installed distribution's version; None when run from a source tree that was never installed."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None


def _template_files(folder: Traversable | Path, relative: str = "") -> Iterator[tuple[str, bytes]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            if not (relative == "" and entry.name in _NOT_TEMPLATE_FOLDERS):
                yield from _template_files(entry, f"{relative}{entry.name}/")
        elif entry.name.endswith(_TEMPLATE_SUFFIXES):
            yield relative + entry.name, entry.read_bytes()


def templates_sha256(folder: str | Path | None = None) -> str:
    """One hash over every template file (name and contents) of a templates folder (default: the bundled
    one), the caption model's prompts aside: they decide every template caption."""
    digest = hashlib.sha256()
    root = resources.files("templates") if folder is None else Path(folder)
    for name, data in _template_files(root):
        digest.update(name.encode("utf-8") + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def predictor_identity(path: str | None) -> dict[str, str | None]:
    """The sha256 of a predictor's config and weights (None = the bundled demo model); its location alone
    when the files are not on this machine (a remote run whose workers load it from their image)."""
    directory = Path(path) if path is not None else DEFAULT_PREDICTOR_DIR
    config, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not (config.is_file() and weights.is_file()):
        return {"location": path}
    return {"config_sha256": file_sha256(config), "weights_sha256": file_sha256(weights)}


def method_fingerprint(predictor: str | None = None, templates: str | Path | None = None) -> dict[str, Any]:
    """Everything that identifies the method version, as JSON values (sorted keys give stable bytes).

    ``templates`` names another templates folder (vocabulary, sentences, styles) in place of the bundled one.
    """
    schema = load_schema(None if templates is None else Path(templates) / "attributes.yaml")
    return {
        "package_version": package_version(),
        "schema_version": schema.version,
        "templates_sha256": templates_sha256(templates),
        "predictor": predictor_identity(predictor),
    }
