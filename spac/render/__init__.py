"""Procedural pedestrian renderer: labelled demo images with ground-truth attributes.

No photographs of people ship with the project, so it draws its own. `render_person` returns an image
and the attributes visible in it; `render_dataset` writes a labelled folder; `training_source` serves
rendered people to the attribute predictor's training; `spac render` (spac.cli.render) writes a
folder from the command line, as for the bundled samples in spac/assets/samples/ (see their README).

Modules: scene (view, framing, background, camera), body (pose and painter), garments and figure
(drawing), identity (random attribute sets), person (one image), dataset (a folder), training_source.
"""

from spac.render.body import PARTS
from spac.render.dataset import render_dataset
from spac.render.identity import random_identity
from spac.render.person import Rendering, render_layers, render_person

__all__ = ["PARTS", "Rendering", "random_identity", "render_dataset", "render_layers", "render_person"]
