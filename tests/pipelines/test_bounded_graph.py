"""The synthesis graph holds no whole-corpus element: no global combine or side input over per-image data.

The built graph is walked, not run. Per-image PCollections are those the images flow through: from the
listing of the input to everything downstream of it. Data stops being per-image only at the steps in
``BOUNDED_STEPS``, whose outputs are O(shards + buckets + reasons) whatever the corpus size. A global
combine (``CombineGlobally``, ``ToList``, ``Top``, ...) or a side input fed by a per-image PCollection
fails the test.
"""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.pipeline import PipelineVisitor

from pipelines import synthesize
from pipelines.job import make_job

BOUNDED_STEPS = {
    "WriteShards": "one shard index per shard",
    "BucketTotals": "one (bucket, identities, images) triple per identity bucket (at most 4,096)",
    "WriteDeadLetters/WriteLetterParts": "one bucket number per dead-letter bucket (at most 1,024)",
    "CountReasons": "one count per (stage, kind of reason)",
}
# A combine over per-image data allowed because a flag bounds it, not the corpus.
FLAG_BOUNDED_COMBINES = {"SmallestKeys": "--limit N keeps N keys"}


class _Graph(PipelineVisitor):
    def __init__(self):
        self.applied = []

    def enter_composite_transform(self, node):
        self.applied.append(node)

    def visit_transform(self, node):
        self.applied.append(node)


def _within(label: str, steps) -> str | None:
    return next((step for step in steps if label == step or label.startswith(step + "/")), None)


def whole_corpus_elements(pipeline: beam.Pipeline, image_step: str = "DecodeImage") -> list[str]:
    """What in the graph gathers per-image data into one element: a line per offending step."""
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
    frontier = [pcoll for node in leaves if node.full_label.split("/")[0] == image_step
                for pcoll in node.main_inputs.values()]
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
            if node.parts or _within(node.full_label, {**BOUNDED_STEPS, **FLAG_BOUNDED_COMBINES}):
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
        if isinstance(node.transform, beam.CombineGlobally) and fed and not _within(
                node.full_label, FLAG_BOUNDED_COMBINES):
            problems[node.full_label] = "a global combine over per-image data"
        elif any(id(side.pvalue) in per_image for side in node.side_inputs):
            problems[node.full_label] = "a side input made of per-image data"
    return [f"{label}: {what}" for label, what in sorted(problems.items())]


def _job_pipeline(input_folder, output, predictor, *extra: str) -> beam.Pipeline:
    args, _ = synthesize.parse_known_args(["--input", str(input_folder), "--output", str(output),
                                           "--predictor", str(predictor), *extra])
    pipeline = beam.Pipeline()
    synthesize.build(pipeline, make_job(args, "DirectRunner"))
    return pipeline


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("extra", [(), ("--limit", "10"), ("--identity_cleaning", "on"),
                                   ("--sentences", f"+{REPO / 'templates' / 'sentences.yaml'}")])
def test_the_synthesis_graph_has_no_whole_corpus_element(input_folder, tmp_path, colour_predictor, extra):
    pipeline = _job_pipeline(input_folder, tmp_path / "out", colour_predictor, *extra)
    assert whole_corpus_elements(pipeline) == []


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
