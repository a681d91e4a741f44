"""The house rules of ../shared/DESIGN.md, asserted from the import graph of the source tree.

Every ``import`` statement counts, also those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "spac", "shards", "pipelines", "plip")
THIRD_PARTY_BEAM = "apache_beam"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@lru_cache(maxsize=1)
def _sources() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


def _resolve(name: str, modules: set[str]) -> str | None:
    """The project module ``name`` refers to (longest known prefix), or None for a third-party name."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imported_names(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement of ``module`` names (``from a import b`` gives a.b and a)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


@lru_cache(maxsize=1)
def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules it imports (a package's own __init__ is not an edge)."""
    sources = _sources()
    modules = set(sources)
    graph: dict[str, set[str]] = {}
    for module, tree in sources.items():
        is_package = (ROOT / module.replace(".", "/") / "__init__.py").is_file()
        targets = {_resolve(name, modules) for name in _imported_names(tree, module, is_package)}
        # `from common.cli import x` resolves to common.cli; drop the bare parents it implies
        graph[module] = {
            t
            for t in targets
            if t is not None and t != module and not any(other.startswith(t + ".") for other in targets if other)
        }
    return graph


@lru_cache(maxsize=1)
def third_party_imports() -> dict[str, set[str]]:
    sources = _sources()
    return {
        module: {name.split(".")[0] for name in _imported_names(tree, module, False)}
        for module, tree in sources.items()
    }


def _has_main_guard(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = {getattr(n, "id", None) for n in ast.walk(node.test)} | {
                getattr(n, "value", None) for n in ast.walk(node.test) if isinstance(n, ast.Constant)
            }
            if "__name__" in names and "__main__" in names:
                return True
    return False


def _defines_main(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.FunctionDef) and node.name in ("main", "cli_main") for node in tree.body)


def entry_points() -> set[str]:
    return {m for m, tree in _sources().items() if _has_main_guard(tree) or m.endswith(".__main__")}


def program_modules() -> set[str]:
    """Modules that define a program's ``main`` (the entry points themselves and the modules they forward to)."""
    return {m for m, tree in _sources().items() if _defines_main(tree)}


def importers_of(target: str) -> set[str]:
    return {m for m, targets in import_graph().items() if target in targets}


def _in(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_the_whole_tree():
    graph = import_graph()
    assert {"spac.captioning.captioner", "shards.reader", "pipelines.synthesize", "plip.model"} <= set(graph)
    assert "spac.attributes" in graph["spac.captioning.captioner"]


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt) :] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, f"import cycles: {[' -> '.join(c) for c in cycles]}"


def test_entry_points_are_leaves():
    entries = entry_points()
    assert {"pipelines.synthesize", "spac.cli.main"} <= entries
    assert {m: importers_of(m) for m in entries if importers_of(m)} == {}


def test_program_modules_are_imported_only_by_their_entry_points():
    entries = entry_points()
    offenders = {m: importers_of(m) - entries for m in program_modules()}
    assert {m: who for m, who in offenders.items() if who} == {}


def test_plip_library_never_imports_the_programs():
    library = {m for m in import_graph() if _in(m, "plip") and not _in(m, "plip.programs") and m not in entry_points()}
    assert "plip.model" in library and "plip.checkpoint" in library
    offenders = {m: {t for t in import_graph()[m] if _in(t, "plip.programs")} for m in library}
    assert {m: t for m, t in offenders.items() if t} == {}


METHOD_FORBIDDEN = ("shards", "pipelines", "plip", "spac.cli", "spac.render", "spac.report")
# the method: everything in spac but its commands, its demo renderer and its report page
NOT_METHOD = ("spac.cli", "spac.render", "spac.report")


def _offenders(modules: set[str], forbidden: tuple[str, ...]) -> dict[str, set[str]]:
    found = {m: {t for t in import_graph()[m] if _in(t, *forbidden)} for m in modules}
    return {m: t for m, t in found.items() if t}


def _modules(*prefixes: str) -> set[str]:
    return {m for m in import_graph() if _in(m, *prefixes)}


def test_spac_method_modules_stay_below_everything_else():
    method = _modules("spac") - _modules(*NOT_METHOD)
    assert {"spac.captioning.captioner", "spac.predictor.model", "spac.language", "spac.corpus.filters"} <= method
    # the predictor's training data may be rendered people: its one way into the renderer; the attribute
    # datasets' images are untrusted files: they decode through the one decode policy (shards.images)
    allowed = {
        "spac.predictor.data_sources": {"spac.render.training_source"},
        "spac.predictor.datasets.dataset": {"shards.images"},
    }
    offenders = {m: t - allowed.get(m, set()) for m, t in _offenders(method, METHOD_FORBIDDEN).items()}
    assert {m: t for m, t in offenders.items() if t} == {}
    assert {m for m in method if THIRD_PARTY_BEAM in third_party_imports()[m]} == set()


def test_common_helpers_import_no_project_package():
    common = _modules("common")
    assert {"common.cli", "common.errors", "common.devices"} <= common
    assert _offenders(common, ("spac", "shards", "pipelines", "plip")) == {}


def test_template_captioning_is_pure_python():
    captioning = _modules("spac.captioning")
    assert "spac.captioning.captioner" in captioning
    heavy = {m: third_party_imports()[m] & {"torch", "spacy", "transformers", "numpy"} for m in captioning}
    assert {m: h for m, h in heavy.items() if h} == {}
    assert (
        _offenders(captioning, ("spac.predictor", "spac.mining", "spac.sources", "spac.corpus", "spac.language")) == {}
    )


def test_the_predictor_never_imports_the_captioner():
    assert _offenders(_modules("spac.predictor"), ("spac.captioning", "spac.mining", "spac.corpus")) == {}


def test_mining_and_sources_need_no_model():
    modules = _modules("spac.mining", "spac.sources")
    assert {m for m in modules if {"torch", "transformers"} & third_party_imports()[m]} == set()
    assert _offenders(modules, ("spac.predictor", "spac.corpus")) == {}  # mined sentences use the slot language


def test_only_the_report_and_the_commands_of_spac_read_shards():
    readers = {m for m in _modules("spac") if any(_in(t, "shards") and t != "shards.images" for t in import_graph()[m])}
    assert readers and all(_in(m, "spac.cli", "spac.report") for m in readers), readers
    # the decode policy is not the corpus: the attribute datasets use it for their image files
    assert {m for m in _modules("spac") if "shards.images" in import_graph()[m]} - _modules("spac.cli") == {
        "spac.predictor.datasets.dataset"
    }


def test_spac_cli_holds_commands_only():
    # every module of the command layer is the `spac` dispatcher or a command with its own main
    cli = _modules("spac.cli") - {"spac.cli"}
    assert {m for m in cli if m not in program_modules() and m != "spac.cli.main"} == set()


def test_plip_library_takes_from_spac_only_the_language_tools():
    library = _modules("plip") - _modules("plip.programs") - entry_points()
    assert {m: t for m, t in _offenders(library, ("spac",)).items() if t != {"spac.language"}} == {}


def test_spac_as_a_whole_never_imports_pipelines_plip_or_beam():
    spac = {m for m in import_graph() if _in(m, "spac")}
    offenders = {m: {t for t in import_graph()[m] if _in(t, "pipelines", "plip")} for m in spac}
    assert {m: t for m, t in offenders.items() if t} == {}
    assert {m for m in spac if THIRD_PARTY_BEAM in third_party_imports()[m]} == set()


def test_shards_knows_only_the_sample_format():
    shards = {m for m in import_graph() if _in(m, "shards")}
    offenders = {m: {t for t in import_graph()[m] if not _in(t, "shards", "common.errors")} for m in shards}
    assert {m: t for m, t in offenders.items() if t} == {}
    assert {m for m in shards if {THIRD_PARTY_BEAM, "torch", "transformers"} & third_party_imports()[m]} == set()


def test_plip_never_imports_pipelines_or_beam():
    plip = {m for m in import_graph() if _in(m, "plip")}
    assert {m: t for m in plip if (t := {x for x in import_graph()[m] if _in(x, "pipelines")})} == {}
    assert {m for m in plip if THIRD_PARTY_BEAM in third_party_imports()[m]} == set()


# the caption-model stage (spac.generation): grounded in the method's schema, language tools and captioner, nothing
# else of the project; only its in-process backend loads a model
GENERATION_MAY_IMPORT = ("spac.generation", "spac.attributes", "spac.language", "spac.captioning", "common")
GENERATION_MODEL_MODULE = "spac.generation.in_process"


def test_the_caption_model_stage_imports_only_its_grounding_and_only_its_model_backend_loads_torch():
    generation = _modules("spac.generation")
    assert {"spac.generation.stage", "spac.generation.checks", "spac.generation.requests"} <= generation
    outside = {m: {t for t in import_graph()[m] if not _in(t, *GENERATION_MAY_IMPORT)} for m in generation}
    assert {m: t for m, t in outside.items() if t} == {}
    assert {m for m in generation if THIRD_PARTY_BEAM in third_party_imports()[m]} == set()
    assert {m for m in generation if {"torch", "transformers"} & third_party_imports()[m]} <= {GENERATION_MODEL_MODULE}


@pytest.mark.parametrize(
    "module, package",
    [
        ("spac.generation.stage", "torch"),
        ("spac.generation.checks", "transformers"),
        ("spac.generation.requests", THIRD_PARTY_BEAM),
    ],
)
def test_the_caption_model_rule_catches_a_model_or_beam_outside_its_backend(monkeypatch, module, package):
    broken = {k: set(v) for k, v in third_party_imports().items()}
    broken[module] |= {package}
    monkeypatch.setitem(globals(), "third_party_imports", lambda: broken)
    with pytest.raises(AssertionError):
        test_the_caption_model_stage_imports_only_its_grounding_and_only_its_model_backend_loads_torch()


# the neural SPAC captioner (spac.neural_captioner): a method subpackage over the schema, the language tools and the
# predictor's backbone builder; the corpus reaches it only through its command (spac.cli.train_captioner)
NEURAL_CAPTIONER_MAY_IMPORT = ("spac.neural_captioner", "spac.attributes", "spac.language", "spac.predictor", "common")


def test_the_neural_captioner_imports_only_the_schema_language_tools_and_predictor():
    captioner = _modules("spac.neural_captioner")
    assert {"spac.neural_captioner.model", "spac.neural_captioner.files"} <= captioner
    outside = {m: {t for t in import_graph()[m] if not _in(t, *NEURAL_CAPTIONER_MAY_IMPORT)} for m in captioner}
    assert {m: t for m, t in outside.items() if t} == {}
    assert {m for m in captioner if THIRD_PARTY_BEAM in third_party_imports()[m]} == set()


# each Beam job: its subpackage and its entry point; pipelines.shared holds what both use
PIPELINE_JOBS = {
    "synthesis": ("pipelines.synthesis", "pipelines.synthesize"),
    "import": ("pipelines.importing", "pipelines.import_corpus"),
}
PIPELINES_SHARED = "pipelines.shared"


def test_no_pipeline_job_imports_another_and_the_shared_pieces_import_no_job():
    jobs = {name: _modules(*prefixes) for name, prefixes in PIPELINE_JOBS.items()}
    assert "pipelines.synthesis.transforms" in jobs["synthesis"] and "pipelines.importing.sources" in jobs["import"]
    every_job = tuple(prefix for prefixes in PIPELINE_JOBS.values() for prefix in prefixes)
    # every module of pipelines/ is one job's or shared: a new job gets its own subpackage, not a flat module
    assert _modules("pipelines") - {"pipelines"} - _modules(PIPELINES_SHARED, *every_job) == set()
    for name, modules in jobs.items():
        others = tuple(p for other, prefixes in PIPELINE_JOBS.items() if other != name for p in prefixes)
        assert _offenders(modules, others) == {}, name
    assert _offenders(_modules(PIPELINES_SHARED), every_job) == {}


@pytest.mark.parametrize(
    "module, target",
    [
        ("pipelines.shared.dead_letters", "pipelines.synthesis.transforms"),
        ("pipelines.shared.launch", "pipelines.import_corpus"),
        ("pipelines.synthesis.graph", "pipelines.importing.sources"),
    ],
)
def test_the_pipelines_rule_catches_each_way_of_breaking_it(monkeypatch, module, target):
    broken = {k: set(v) for k, v in import_graph().items()}
    broken[module] |= {target}
    monkeypatch.setitem(globals(), "import_graph", lambda: broken)
    with pytest.raises(AssertionError):
        test_no_pipeline_job_imports_another_and_the_shared_pieces_import_no_job()


@pytest.mark.parametrize(
    "rule",
    [
        test_no_import_cycles,
        test_entry_points_are_leaves,
        test_spac_method_modules_stay_below_everything_else,
        test_common_helpers_import_no_project_package,
        test_template_captioning_is_pure_python,
        test_the_predictor_never_imports_the_captioner,
        test_mining_and_sources_need_no_model,
        test_only_the_report_and_the_commands_of_spac_read_shards,
        test_plip_library_takes_from_spac_only_the_language_tools,
        test_no_pipeline_job_imports_another_and_the_shared_pieces_import_no_job,
        test_the_caption_model_stage_imports_only_its_grounding_and_only_its_model_backend_loads_torch,
        test_the_neural_captioner_imports_only_the_schema_language_tools_and_predictor,
    ],
)
def test_the_rules_catch_a_violation(monkeypatch, rule):
    """Each rule fails on a graph that breaks it (so a green run means something)."""
    broken = {k: set(v) for k, v in import_graph().items()}
    broken["spac.attributes"] = broken["spac.attributes"] | {"spac.captioning.captioner"}  # a cycle
    broken["spac.captioning.captioner"] |= {"pipelines.synthesize", "spac.predictor.model"}  # entry point, predictor
    broken["spac.predictor.model"] |= {"spac.captioning.captioner"}
    broken["spac.mining.labels"] |= {"spac.predictor.model"}
    broken["spac.corpus.filters"] |= {"shards.reader"}
    broken["common.cli"] |= {"spac.attributes"}
    broken["plip.model"] |= {"spac.attributes"}
    broken["pipelines.importing.sources"] |= {"pipelines.synthesis.transforms"}  # one job importing another
    broken["spac.generation.stage"] |= {"shards.writer"}  # the caption-model stage writing shards itself
    broken["spac.neural_captioner.model"] |= {"spac.captioning.captioner"}  # the neural captioner using the templates
    monkeypatch.setitem(globals(), "import_graph", lambda: broken)
    with pytest.raises(AssertionError):
        rule()
