import math

import pytest
import torch

from plip.cmpc import cmpc_loss


def test_cmpc_on_a_hand_checked_case():
    image = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    text = torch.tensor([[1.0, 1.0], [0.0, -1.0]])
    weights = torch.tensor([[3.0, 0.0], [0.0, 0.5]])  # rows normalise to the unit axes
    labels = torch.tensor([0, 1])
    # Row 0: image on text -> (1, 1), text on image -> (1, 0). Row 1: image on text -> (0, 3), text on image -> (0, -1).
    image_ce = (math.log(2) + math.log(1 + math.exp(-3))) / 2
    text_ce = (math.log(1 + math.exp(-1)) + math.log(1 + math.e)) / 2
    assert float(cmpc_loss(image, text, labels, weights)) == pytest.approx(image_ce + text_ce, rel=1e-6)
    with pytest.raises(ValueError, match="3-d class vectors, features are 2-d"):
        cmpc_loss(image, text, labels, torch.ones(2, 3))
