"""The method fingerprint: stable for the same templates and predictor, changed by any edit to either.
Every edit is made to a temporary copy; the repository's templates and demo model are never touched."""

import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from spac.attributes import load_schema
from spac.fingerprint import method_fingerprint, predictor_identity, templates_sha256
from spac.predictor.model import CONFIG_FILE, DEFAULT_PREDICTOR_DIR, WEIGHTS_FILE


@pytest.fixture
def templates(tmp_path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(Path(str(resources.files("templates"))), folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.fixture
def predictor(tmp_path) -> Path:
    folder = tmp_path / "predictor"
    folder.mkdir()
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copy(DEFAULT_PREDICTOR_DIR / name, folder / name)
    return folder


def test_stable_and_json_ready_for_the_bundled_method():
    first = method_fingerprint()
    assert first == method_fingerprint()
    assert json.loads(json.dumps(first, sort_keys=True)) == first
    assert set(first) == {"package_version", "schema_version", "templates_sha256", "predictor"}
    assert first["schema_version"] == load_schema().version
    assert set(first["predictor"]) == {"config_sha256", "weights_sha256"}


def test_a_copy_of_the_templates_has_the_bundled_fingerprint(templates):
    assert templates_sha256(templates) == templates_sha256()
    assert method_fingerprint(templates=templates) == method_fingerprint()
    (templates / "__init__.py").write_text("# not a template file\n")
    assert templates_sha256(templates) == templates_sha256()


@pytest.mark.parametrize("relative", ["sentences.yaml", "attributes.yaml", "styles/dense.yaml"])
def test_editing_any_template_file_changes_it(templates, relative):
    before = method_fingerprint(templates=templates)
    path = templates / relative
    path.write_text(path.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    after = method_fingerprint(templates=templates)
    assert after["templates_sha256"] != before["templates_sha256"]
    assert after["predictor"] == before["predictor"]


def test_the_caption_models_prompts_are_not_template_files(templates):
    # a template corpus's job.json stays as it was when prompts are added or edited (a model run records them)
    before = templates_sha256(templates)
    prompts = templates / "prompts" / "instructions.yaml"
    prompts.write_text(prompts.read_text(encoding="utf-8") + "\n# an edit\n", encoding="utf-8")
    assert templates_sha256(templates) == before
    (templates / "styles" / "prompts").mkdir()  # only the top-level prompts folder is left out
    shutil.copy(prompts, templates / "styles" / "prompts" / "x.yaml")
    assert templates_sha256(templates) != before


def test_adding_or_renaming_a_style_changes_it(templates):
    before = templates_sha256(templates)
    shutil.copy(templates / "styles" / "dense.yaml", templates / "styles" / "dense2.yaml")
    added = templates_sha256(templates)
    (templates / "styles" / "dense.yaml").unlink()
    assert len({before, added, templates_sha256(templates)}) == 3


def test_the_schema_version_comes_from_the_templates(templates):
    path = templates / "attributes.yaml"
    text = path.read_text(encoding="utf-8")
    version = load_schema().version
    path.write_text(text.replace(f"schema_version: {version}", f"schema_version: {version + 1}", 1), encoding="utf-8")
    assert method_fingerprint(templates=templates)["schema_version"] == version + 1


@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_editing_a_predictor_file_changes_it(predictor, name):
    before = method_fingerprint(str(predictor))
    assert before == method_fingerprint(str(predictor)) == method_fingerprint()  # a copy of the demo model
    data = bytearray((predictor / name).read_bytes())
    data[-2] ^= 0x01
    (predictor / name).write_bytes(bytes(data))
    after = method_fingerprint(str(predictor))
    assert after["predictor"] != before["predictor"]
    assert after["templates_sha256"] == before["templates_sha256"]


def test_a_predictor_not_on_this_machine_is_identified_by_its_location(tmp_path):
    assert predictor_identity(str(tmp_path / "remote")) == {"location": str(tmp_path / "remote")}
    assert predictor_identity("gs://bucket/model") == {"location": "gs://bucket/model"}
