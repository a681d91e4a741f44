"""A hand-wired SPAC predictor for pipeline tests: the colour of a solid image decides its attributes.

The tiny ResNet backbone is set to pass each normalised RGB channel through (shifted so that 0 stays 0
after the ReLUs) to the pooled features; the heads map a pure red, green or blue image, or a black one,
to one of four attribute profiles. It is saved with spac's own ``save_predictor``, so the job loads it
through the real ``load_predictor`` in every runner mode, and each test image's fate is known.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from spac.attributes import UNKNOWN, load_schema
from spac.predictor.model import SYNTH_PEDES_MEAN, SYNTH_PEDES_STD, AttributePredictor, PredictorConfig, save_predictor

KNOWN = {
    "hair": "short black hair",
    "upper": "red t-shirt",
    "lower": "blue jeans",
    "shoes": "white sneakers",
    "belongings": "black backpack",
}
# colour of the image -> attributes the predictor gives it
PROFILES = {
    (255, 0, 0): {"gender": "man", **KNOWN},
    (0, 255, 0): {"gender": "woman", **KNOWN},
    (0, 0, 255): {"gender": "man", **KNOWN, "hair": UNKNOWN, "shoes": UNKNOWN, "belongings": UNKNOWN},
    (0, 0, 0): {"gender": "man", **KNOWN, "upper": UNKNOWN, "lower": UNKNOWN},
}
RED, GREEN, BLUE, BLACK = PROFILES


def solid_image(colour: tuple[int, int, int], size: tuple[int, int] = (64, 160)) -> Image.Image:
    return Image.new("RGB", size, colour)


def _pass_channels_through(model: AttributePredictor) -> None:
    state = model.backbone.state_dict()
    for name, tensor in state.items():
        if name.endswith("running_var") or name.endswith("normalization.weight"):
            tensor.fill_(1.0)
        elif tensor.is_floating_point():
            tensor.zero_()
    for channel in range(3):
        state["embedder.embedder.convolution.weight"][channel, channel, 3, 3] = 1.0
        # a 0-valued pixel normalises to -mean/std; the shift brings it back to 0 before the ReLU
        state["embedder.embedder.normalization.bias"][channel] = SYNTH_PEDES_MEAN[channel] / SYNTH_PEDES_STD[channel]
        for stage in (1, 2, 3):
            state[f"encoder.stages.{stage}.layers.0.shortcut.convolution.weight"][channel, channel, 0, 0] = 1.0
    model.backbone.load_state_dict(state)


def _wire_heads(model: AttributePredictor) -> None:
    for group in model.schema.groups:
        head = model.heads[group.name]
        items = [item.name for item in group.items]
        colours = sorted({v.colour for v in group.values if v.colour is not None})
        with torch.no_grad():
            for parameter in head.parameters():
                parameter.zero_()
            for channel, colour in enumerate((RED, GREEN, BLUE)):
                value = PROFILES[colour][group.name]
                if value == UNKNOWN:
                    head.item.weight[0, channel] = 10.0
                    continue
                spec = group.value(value)
                head.item.weight[items.index(spec.item) + 1, channel] = 5.0
                if spec.colour is not None:
                    head.colour.weight[colours.index(spec.colour), channel] = 5.0
            # black: every feature is 0, so the biases alone decide
            black = PROFILES[BLACK][group.name]
            head.bias[list(group.labels).index(black)] = 10.0


def save_colour_predictor(directory: str | Path) -> Path:
    # One stripe: a solid image has the same features in every stripe, so one keeps the wiring simple.
    model = AttributePredictor(PredictorConfig.for_schema(load_schema(), bands=1))
    _pass_channels_through(model)
    _wire_heads(model)
    return save_predictor(model, directory)
