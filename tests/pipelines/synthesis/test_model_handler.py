"""pipelines.synthesis.model_handler: the RunInference handler of the SPAC predictor."""

from __future__ import annotations

import pytest
import torch
from apache_beam.ml.inference.base import KeyedModelHandler

from pipelines.synthesis.model_handler import Acceleration, LoadedPredictor, SpacPredictorHandler, acceleration_for
from spac.predictor.model import Prediction
from tests.pipelines.colour_predictor import BLACK, BLUE, GREEN, PROFILES, RED
from tests.pipelines.step_helpers import jpeg


class FakePredictor:
    """Records what the handler hands the model; predicts one numbered Prediction per row."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls: list[tuple[tuple[int, ...], dict]] = []
        self.formats: list[bool] = []

    def preprocess_batch(self, images):
        return torch.ones(len(images), 3, 8, 4)

    def predict_tensors(self, batch, **keywords):
        self.calls.append((tuple(batch.shape), keywords))
        self.formats.append(batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous())
        return [Prediction({"row": str(i)}, {"row": 1.0}) for i in range(batch.shape[0])]

    def to(self, *args, **kwargs):
        self.moved = (args, kwargs)
        return self


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


def test_a_batch_above_batch_size_is_predicted_in_fixed_shape_chunks(colour_predictor):
    handler = SpacPredictorHandler(str(colour_predictor), batch_size=2, max_batch_size=8)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 2, "max_batch_size": 8}
    colours = [RED, GREEN, BLUE, BLACK, RED]
    images = [jpeg(c) for c in colours]
    results = list(handler.run_inference(images, handler.load_model()))
    assert [r.inference.attributes for r in results] == [PROFILES[c] for c in colours]
    assert [r.example for r in results] == images

    fake = FakePredictor()
    assert len(list(handler.run_inference(images, handler.wrap(fake)))) == 5
    assert [shape for shape, _ in fake.calls] == [(2, 3, 8, 4)] * 3  # 2 + 2 + 1 padded to 2


def test_with_embeddings_is_passed_to_the_predictor_only_when_asked():
    images = [jpeg(RED), jpeg(GREEN)]
    for with_embeddings, expected in ((False, {}), (True, {"with_embeddings": True})):
        fake = FakePredictor()
        handler = SpacPredictorHandler(batch_size=4, with_embeddings=with_embeddings)
        results = list(handler.run_inference(images, handler.wrap(fake)))
        assert fake.calls == [((4, 3, 8, 4), expected)]
        assert [r.inference.attributes for r in results] == [{"row": "0"}, {"row": "1"}]


def test_the_bundled_predictor_returns_embeddings_when_asked():
    handler = SpacPredictorHandler(batch_size=2, with_embeddings=True)
    model = handler.load_model()
    try:
        results = list(handler.run_inference([jpeg(RED)], model))
    except TypeError as exc:  # a predictor without the keyword yet
        pytest.skip(f"predict_tensors has no with_embeddings: {exc}")
    assert getattr(results[0].inference, "embedding", None) is not None


def test_sharing_follows_beams_semantics_through_the_keyed_wrapper():
    assert not SpacPredictorHandler().share_model_across_processes()
    shared = KeyedModelHandler(SpacPredictorHandler(share_model=True))
    assert shared.share_model_across_processes() and shared.model_copies() == 1
    copies = KeyedModelHandler(SpacPredictorHandler(model_copies=3))  # Beam: model_copies implies sharing
    assert copies.share_model_across_processes() and copies.model_copies() == 3
    assert KeyedModelHandler(
        SpacPredictorHandler(batch_size=8, max_batch_size=64, min_batch_size=4)
    ).batch_elements_kwargs() == {"min_batch_size": 4, "max_batch_size": 64}


def test_the_first_four_parameters_keep_their_positions(colour_predictor):
    handler = SpacPredictorHandler(str(colour_predictor), "cpu", 6, 1)
    assert handler.batch_elements_kwargs() == {"min_batch_size": 6, "max_batch_size": 6}
    assert (handler._predictor_path, handler._device, handler._torch_threads) == (str(colour_predictor), "cpu", 1)


@pytest.mark.parametrize(
    "keywords, message",
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"batch_size": 8, "max_batch_size": 4}, r"max_batch_size \(4\) must be at least batch_size \(8\)"),
        ({"min_batch_size": 0}, "min_batch_size"),
        ({"batch_size": 4, "min_batch_size": 5}, "min_batch_size"),
        ({"model_copies": 0}, "model_copies"),
    ],
)
def test_bad_batching_and_sharing_settings_are_refused(keywords, message):
    with pytest.raises(ValueError, match=message):
        SpacPredictorHandler(**keywords)


def test_autocast_and_channels_last_only_on_cuda():
    assert acceleration_for("cpu") == Acceleration(None, False)
    assert acceleration_for(torch.device("cpu")) == Acceleration()
    assert acceleration_for("cuda:0", capability=(8, 9)) == Acceleration(torch.bfloat16, True)  # L4
    assert acceleration_for("cuda", capability=(7, 5)) == Acceleration(torch.float16, True)  # T4: no bf16 units


def test_channels_last_reaches_the_model_and_the_batch(monkeypatch):
    entered = []

    class Recorder:
        def __init__(self, device_type, dtype):
            entered.append((device_type, dtype))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch, "autocast", Recorder)
    fake = FakePredictor()
    model = LoadedPredictor(fake, 2, acceleration=Acceleration(torch.bfloat16, True))
    model.predict_encoded([jpeg(RED)])
    assert fake.moved == ((), {"memory_format": torch.channels_last})
    assert fake.formats == [True] and entered == [("cuda", torch.bfloat16)]

    plain = FakePredictor()
    LoadedPredictor(plain, 2).predict_encoded([jpeg(RED)])  # the CPU: no autocast, the batch as it was
    assert not hasattr(plain, "moved") and plain.formats == [False] and len(entered) == 1


def test_a_cpu_model_is_left_as_it_was(colour_predictor):
    handler = SpacPredictorHandler(str(colour_predictor), batch_size=2)
    model = handler.load_model()
    weights = [p for p in model._predictor.parameters() if p.ndim == 4]
    assert model._acceleration == Acceleration() and all(p.is_contiguous() for p in weights)


def test_a_shared_model_is_called_once_per_batch_through_beams_proxy(colour_predictor):
    """--share_model: RunInference holds a proxy to a model in another process; results are the same."""
    from apache_beam.utils import multi_process_shared

    handler = SpacPredictorHandler(str(colour_predictor), batch_size=2, max_batch_size=4, share_model=True)
    images = [jpeg(c) for c in (RED, GREEN, BLUE)]
    shared = multi_process_shared.MultiProcessShared(
        handler.load_model, tag=f"spac-test-{id(handler)}", always_proxy=True
    )
    proxy = shared.acquire()
    try:
        through_proxy = [r.inference for r in handler.run_inference(images, proxy)]
    finally:
        shared.unsafe_hard_delete()
    assert through_proxy == [r.inference for r in handler.run_inference(images, handler.load_model())]


def test_predict_preprocessed_pads_to_the_batch_shape_and_refuses_a_bigger_batch():
    fake = FakePredictor()
    loaded = SpacPredictorHandler(batch_size=4).wrap(fake)
    predictions = loaded.predict_preprocessed(torch.ones(3, 3, 8, 4))
    assert [p.attributes for p in predictions] == [{"row": "0"}, {"row": "1"}, {"row": "2"}]
    assert fake.calls == [((4, 3, 8, 4), {})]
    with pytest.raises(ValueError, match="got 5 images for a batch of 4"):
        loaded.predict_preprocessed(torch.ones(5, 3, 8, 4))
