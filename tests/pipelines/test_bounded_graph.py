"""Neither job's graph (synthesis, import) holds a whole-corpus element: no global combine or side input over
per-image data.

The built graph is walked, not run. Per-image PCollections are those the images flow through: from the
listing of the input to everything downstream of it. Data stops being per-image only at the steps in
the job's bounded steps, whose outputs are O(shards + buckets + reasons) whatever the corpus size. A global
combine (``CombineGlobally``, ``ToList``, ``Top``, ...) or a side input fed by a per-image PCollection
fails the test.
"""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.pipeline import PipelineVisitor

from pipelines import import_corpus, synthesize
from pipelines.importing import graph as import_graph
from pipelines.importing.job import make_import_job
from pipelines.synthesis import graph as synthesis_graph
from pipelines.synthesis.job import make_job
from tests.pipelines.import_datasets import write_cuhk_pedes, write_synthpedes

BOUNDED_STEPS = {
    "WriteShards": "one shard index per shard",
    "BucketTotals": "one (bucket, identities, images) triple per identity bucket (at most 4,096)",
    "WriteDeadLetters/WriteLetterParts": "one bucket number per dead-letter bucket (at most 1,024)",
    "CountReasons": "one count per (stage, kind of reason)",
    "SumStageCounts": "one total per counter of the caption-model stage",
    "SampleRejectedTexts": "at most outputs.REJECTED_EXAMPLES rejected texts per rejection reason",
}
# A combine over per-image data allowed because a flag bounds it, not the corpus.
FLAG_BOUNDED_COMBINES = {"SmallestKeys": "--limit N keeps N keys"}
IMPORT_BOUNDED_STEPS = {
    "WriteShards": "one shard index per shard",
    "DistinctBlocks": "one block number per shard",
    "WriteDeadLetters/WriteLetterParts": "one bucket number per block of 10,000 entries",
    "CountStages": "one count per stage",
}
# The import report's tally: counts per distinct released phrase outside the schema, not per image.
IMPORT_BOUNDED_COMBINES = {"Summarise": "grows with the distinct out-of-schema phrases only"}


class _Graph(PipelineVisitor):
    def __init__(self):
        self.applied = []

    def enter_composite_transform(self, node):
        self.applied.append(node)

    def visit_transform(self, node):
        self.applied.append(node)


def _within(label: str, steps) -> str | None:
    return next((step for step in steps if label == step or label.startswith(step + "/")), None)


def whole_corpus_elements(
    pipeline: beam.Pipeline, image_step: str = "DecodeImage", bounded_steps=None, bounded_combines=None
) -> list[str]:
    """What in the graph gathers per-image data into one element: a line per offending step (default: the
    synthesis job's bounded steps and combines)."""
    bounded_steps = BOUNDED_STEPS if bounded_steps is None else bounded_steps
    bounded_combines = FLAG_BOUNDED_COMBINES if bounded_combines is None else bounded_combines
    graph = _Graph()
    pipeline.visit(graph)
    producer = {}
    consumers: dict[int, list] = {}
    for node in graph.applied:
        for output in node.outputs.values():
            producer.setdefault(id(output), node)  # a leaf visited before the composite would not override
        for pcoll in [*node.main_inputs.values(), *(side.pvalue for side in node.side_inputs)]:
            consumers.setdefault(id(pcoll), []).append(node)
    leaves = [node for node in graph.applied if not node.parts]
    for node in leaves:
        for output in node.outputs.values():
            producer[id(output)] = node
    # roots: what flows into the image step, and upstream of it everything not made from nothing (a Create)
    per_image: set[int] = set()
    frontier = [
        pcoll for node in leaves if node.full_label.split("/")[0] == image_step for pcoll in node.main_inputs.values()
    ]
    while frontier:
        pcoll = frontier.pop()
        made_by = producer.get(id(pcoll))
        if id(pcoll) in per_image or made_by is None or not made_by.main_inputs:
            continue
        per_image.add(id(pcoll))
        frontier.extend(made_by.main_inputs.values())
    # downstream of any per-image collection, except past a bounded step
    frontier = [pcoll_id for pcoll_id in per_image]
    while frontier:
        pcoll_id = frontier.pop()
        for node in consumers.get(pcoll_id, []):
            if node.parts or _within(node.full_label, {**bounded_steps, **bounded_combines}):
                continue  # composites are walked through their leaves
            for output in node.outputs.values():
                if id(output) not in per_image:
                    per_image.add(id(output))
                    frontier.append(id(output))
    problems: dict[str, str] = {}
    for node in graph.applied:  # outer transforms come first: what a flagged combine holds is not listed again
        if _within(node.full_label, problems):
            continue
        fed = [pcoll for pcoll in node.main_inputs.values() if id(pcoll) in per_image]
        if isinstance(node.transform, beam.CombineGlobally) and fed and not _within(node.full_label, bounded_combines):
            problems[node.full_label] = "a global combine over per-image data"
        elif any(id(side.pvalue) in per_image for side in node.side_inputs):
            problems[node.full_label] = "a side input made of per-image data"
    return [f"{label}: {what}" for label, what in sorted(problems.items())]


def _job_pipeline(input_folder, output, predictor, *extra: str) -> beam.Pipeline:
    args, _ = synthesize.parse_known_args(
        ["--input", str(input_folder), "--output", str(output), "--predictor", str(predictor), *extra]
    )
    pipeline = beam.Pipeline()
    synthesis_graph.build(pipeline, make_job(args, "DirectRunner"))
    return pipeline


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("--limit", "10"),
        ("--identity_cleaning", "on"),
        ("--sentences", f"+{REPO / 'templates' / 'sentences.yaml'}"),
        # the graph is built, not run: no server needs to answer
        ("--captioner", "mllm", "--mllm_server", "http://127.0.0.1:9/v1", "--mllm_model", "tiny"),
    ],
)
def test_the_synthesis_graph_has_no_whole_corpus_element(input_folder, tmp_path, colour_predictor, extra):
    pipeline = _job_pipeline(input_folder, tmp_path / "out", colour_predictor, *extra)
    assert whole_corpus_elements(pipeline) == []


@pytest.fixture(scope="module")
def import_datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    return {"synthpedes": write_synthpedes(root / "SYNTH-PEDES"), "cuhk-pedes": write_cuhk_pedes(root / "CUHK-PEDES")}


@pytest.mark.parametrize(
    "dataset, extra", [("synthpedes", ()), ("cuhk-pedes", ()), ("cuhk-pedes", ("--attributes", "unknown"))]
)
def test_the_import_graph_has_no_whole_corpus_element(import_datasets, tmp_path, dataset, extra):
    args, _ = import_corpus.parse_known_args(
        ["--input", str(import_datasets[dataset]), "--output", str(tmp_path / "out"), *extra]
    )
    pipeline = beam.Pipeline()
    import_graph.build(pipeline, make_import_job(args))
    assert whole_corpus_elements(pipeline, "ParseEntry", IMPORT_BOUNDED_STEPS, IMPORT_BOUNDED_COMBINES) == []


def test_the_check_finds_the_import_jobs_old_list_of_every_dead_letter(import_datasets, tmp_path):
    """The import job once gathered its letters with one ToList; the check would have caught it."""
    args, _ = import_corpus.parse_known_args(
        ["--input", str(import_datasets["synthpedes"]), "--output", str(tmp_path / "out")]
    )
    pipeline = beam.Pipeline()
    import_graph.build(pipeline, make_import_job(args))
    letters = pipeline.applied_labels  # the labels applied so far, to find the flattened letters by name
    assert "AllDeadLetters" in letters
    graph = _Graph()
    pipeline.visit(graph)
    flattened = next(node for node in graph.applied if node.full_label == "AllDeadLetters").outputs[None]
    _ = flattened | "CollectDeadLetters" >> beam.combiners.ToList()
    assert whole_corpus_elements(pipeline, "ParseEntry", IMPORT_BOUNDED_STEPS, IMPORT_BOUNDED_COMBINES) == [
        "CollectDeadLetters/CollectDeadLetters: a global combine over per-image data"
    ]


def test_the_check_finds_a_global_list_of_samples_and_a_side_input_of_keys():
    pipeline = beam.Pipeline()
    files = pipeline | "Files" >> beam.Create(["a", "b"]) | "ListFiles" >> beam.FlatMap(lambda name: [name])
    images = files | "DecodeImage" >> beam.Map(lambda name: {"key": name})
    keys = images | "Keys" >> beam.Map(lambda image: image["key"]) | "CollectKeys" >> beam.combiners.ToList()
    _ = images | "AssignShard" >> beam.Map(lambda image, keys: image, beam.pvalue.AsSingleton(keys))
    _ = images | "CountImages" >> beam.combiners.Count.Globally()  # a count is a global combine too: flagged
    assert whole_corpus_elements(pipeline) == [
        "AssignShard: a side input made of per-image data",
        "CollectKeys/CollectKeys: a global combine over per-image data",
        "CountImages/CombineGlobally(CountCombineFn): a global combine over per-image data",
    ]


def test_the_check_finds_a_combine_upstream_of_decoding():
    pipeline = beam.Pipeline()
    refs = pipeline | "Files" >> beam.Create(["a"]) | "ListFiles" >> beam.FlatMap(lambda name: [name])
    _ = refs | "AllRefs" >> beam.combiners.ToList()
    _ = refs | "DecodeImage" >> beam.Map(lambda name: name)
    assert whole_corpus_elements(pipeline) == ["AllRefs/AllRefs: a global combine over per-image data"]
