"""`spac eval-attributes`: PA-100K metrics on the dataset's own attributes mapped back from the six groups,
per-group accuracy on labelled groups only, rendered identities, --json, one-line errors."""

import json

import numpy as np
import pytest

from common.cli import run_main
from spac.attributes import load_schema
from spac.cli.eval_attributes import build_parser, cli_main, score_source
from spac.predictor.data_sources import DataSpec, open_source
from spac.predictor.datasets.mapping import load_mapping
from spac.predictor.datasets.pa100k import write_pa100k
from spac.predictor.metrics import attribute_report
from spac.predictor.model import Prediction
from spac.render.training_source import training_people


@pytest.fixture(scope="module")
def pa100k(tmp_path_factory):
    root = tmp_path_factory.mktemp("pa100k")
    people = training_people(5, 6)
    write_pa100k(root, {"train": [people[0]], "val": [people[1]], "test": [people[i] for i in range(2, 6)]})
    return root, [people[i] for i in range(2, 6)]


class _Oracle:
    """Predicts the rendered truth of each test image (looked up by its pixels), or a fixed answer."""

    def __init__(self, truths, fixed=None):
        from spac.predictor.model import PredictorConfig

        self.schema = load_schema()
        self.config = PredictorConfig.for_schema(self.schema, image_size=(8, 4))
        self.truths, self.fixed, self.seen = truths, fixed, 0

    def predict_tensors(self, batch):
        answers = []
        for _ in range(len(batch)):
            answers.append(self.fixed or self.truths[self.seen])
            self.seen += 1
        return [Prediction(self.schema.validate(a), {}) for a in answers]


def test_a_perfect_predictor_scores_1_on_every_mapped_attribute_and_labelled_group(pa100k):
    root, people = pa100k
    source = open_source(DataSpec("pa100k", str(root)), load_schema())
    report = score_source(_Oracle([a for _, a in people]), source, "test", 0)
    assert report["examples"] == 4 and report["split"] == "test"
    assert report["groups"]["hair"]["labelled"] == 0
    assert all(r["accuracy"] == 1.0 for g, r in report["groups"].items() if r["labelled"])
    metrics = report["attributes"]
    assert set(metrics["attributes"]) == set(load_mapping("pa100k").mapped)
    assert metrics["accuracy"] == pytest.approx(1.0) and metrics["f1"] == pytest.approx(1.0)


def test_scores_are_the_metrics_of_the_mapped_back_predictions(pa100k):
    root, people = pa100k
    mapping = load_mapping("pa100k")
    source = open_source(DataSpec("pa100k", str(root)), load_schema())
    guess = {
        "gender": "woman",
        "upper": "red coat",
        "lower": "blue skirt",
        "shoes": "black boots",
        "belongings": "black backpack",
    }
    report = score_source(_Oracle(None, guess), source, "test", 0)
    columns = [mapping.column(a) for a in mapping.mapped]
    truth = np.stack([mapping.bits(a) for _, a in people])[:, columns]
    predicted = np.stack([mapping.bits(guess)] * 4)[:, columns]
    assert report["attributes"]["mA"] == pytest.approx(attribute_report(truth, predicted, mapping.mapped)["mA"])
    women = sum(a["gender"] == "woman" for _, a in people)
    assert report["groups"]["gender"]["accuracy"] == pytest.approx(women / 4)


def test_the_command_prints_tables_or_json(tmp_path, pa100k, capsys):
    root, _ = pa100k
    assert cli_main(["--data", f"pa100k:{root}", "--data", "rendered:3", "--quiet", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "PA-100K (pa100k:" in out and "test split, 4 images" in out and "mA " in out and "boots" in out
    assert "rendered (rendered:3), test split, 3 images" in out
    assert cli_main(["--data", f"pa100k:{root}", "--split", "val", "--json", "--quiet", "--threads", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    scored = report["sources"][f"pa100k:{root}"]
    assert scored["split"] == "val" and scored["examples"] == 1 and "mA" in scored["attributes"]
    assert report["predictor"] == "bundled demo predictor"


def test_help_and_errors(tmp_path, capsys):
    assert all(action.help for action in build_parser()._actions)
    assert run_main("spac eval-attributes", cli_main, ["--data", f"peta:{tmp_path}"]) == 2
    assert "no PETA subset folders" in capsys.readouterr().err
    assert run_main("spac eval-attributes", cli_main, ["--predictor", str(tmp_path / "none")]) == 2
    assert "no predictor directory" in capsys.readouterr().err
