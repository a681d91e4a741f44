"""pipelines.model_handler: the RunInference handler of the SPAC predictor."""
from __future__ import annotations

from pipelines.model_handler import SpacPredictorHandler
from tests.pipelines.colour_predictor import BLACK, GREEN, PROFILES, RED
from tests.pipelines.step_helpers import jpeg



def test_model_handler_pads_batches_so_predictions_do_not_depend_on_batching(colour_predictor):
    handler = SpacPredictorHandler(str(colour_predictor), batch_size=4)
    assert handler.batch_elements_kwargs()["max_batch_size"] == 4
    model = handler.load_model()
    images = [jpeg(c) for c in (RED, GREEN, BLACK)]
    together = list(handler.run_inference(images, model))
    alone = [r for data in images for r in handler.run_inference([data], model)]
    assert [r.inference.attributes for r in together] == [PROFILES[c] for c in (RED, GREEN, BLACK)]
    assert [r.inference for r in together] == [r.inference for r in alone]
    assert together[0].example == images[0] and handler.get_num_bytes(images) == sum(map(len, images))
