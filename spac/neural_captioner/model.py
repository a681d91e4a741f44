"""The neural SPAC captioner (REFERENCE §1): image prefix encoder + two style encoders + a GPT-2 generator.

- **Prefix encoder.** The visual backbone's last feature map is pooled into ``bands`` horizontal stripes (as the
  predictor's heads see it: a colour on the torso and on the legs stay apart), then a shared projection feeds one
  **branch per attribute group plus one sentence branch**; each branch gives ``prefix_length`` vectors of the
  generator's width. Each group's branch also predicts that group's label (a linear head on its prefix): the
  **attribute loss**, a cross-entropy per group over the examples whose label is known (label id ``-1`` =
  unknown, masked), averaged over the groups, weighted ``attribute_weight`` (0.15) beside the captions' loss.
- **Two style encoders** (one transformer layer each) turn the same prefixes into the generator's prefix
  embeddings, one per annotator style; a caption is trained through its own style's encoder.
- **Generator**: ``GPT2LMHeadModel`` reading the prefix embeddings then the caption's tokens; the language-model
  loss is the mean cross-entropy of the caption tokens (its end-of-text token included), in float32.

:meth:`NeuralCaptioner.generate` decodes a batch with the generator's key/value cache: greedy at temperature 0;
otherwise each image samples with its own seeded generator, so its text does not depend on its batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from PIL import Image
from torch import nn
from transformers import AutoConfig, AutoModel, GPT2LMHeadModel, ResNetConfig, ResNetModel

from common.errors import InputError, error_line
from common.imaging import normalise, pixel_tensor
from spac.attributes import Schema, load_schema
from spac.neural_captioner.config import RESNET, CaptionerError, NeuralCaptionerConfig, check_labels
from spac.predictor.model import PredictorConfig, build_predictor

SENTENCE = "sentence"  # the branch that carries what no attribute group says
IGNORED = -1  # an unknown attribute label: masked out of the attribute loss


def _feature_width(backbone_config: Any) -> int:
    """Channels of the backbone's last feature map (CNNs) or width of its tokens (transformers)."""
    sizes = getattr(backbone_config, "hidden_sizes", None)
    return int(sizes[-1]) if sizes else int(backbone_config.hidden_size)


def stripes(features: torch.Tensor, bands: int) -> torch.Tensor:
    """``[N, bands * C]``: a feature map ``[N, C, h, w]`` averaged into horizontal stripes, or a token sequence
    ``[N, L, C]`` (raster order, so consecutive runs are rows) averaged into ``bands`` runs."""
    if features.ndim == 4:
        pooled = nn.functional.adaptive_avg_pool2d(features, (bands, 1)).flatten(2)
    else:
        pooled = nn.functional.adaptive_avg_pool1d(features.transpose(1, 2), bands)
    return pooled.transpose(1, 2).flatten(1)


class PrefixEncoder(nn.Module):
    """Pooled image features -> one prefix per branch ``[N, branches * P, width]`` and each group's logits."""

    def __init__(self, config: NeuralCaptionerConfig, feature_width: int, width: int) -> None:
        super().__init__()
        self.groups, self.prefix_length, self.width = config.groups, config.prefix_length, width
        pooled = feature_width * config.bands
        self.shared = nn.Sequential(nn.LayerNorm(pooled), nn.Linear(pooled, width), nn.GELU())
        self.branches = nn.ModuleDict(
            {name: nn.Linear(width, config.prefix_length * width) for name in (*self.groups, SENTENCE)}
        )
        self.heads = nn.ModuleDict(
            {g: nn.Linear(config.prefix_length * width, len(labels)) for g, labels in config.labels.items()}
        )
        self.position = nn.Parameter(torch.zeros(config.prefix_tokens, width))

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        shared = self.shared(pooled)
        outputs = {name: branch(shared) for name, branch in self.branches.items()}
        logits = {g: self.heads[g](outputs[g]) for g in self.groups}
        prefixes = torch.cat([outputs[name].view(-1, self.prefix_length, self.width) for name in self.branches], 1)
        return prefixes + self.position, logits


class StyleEncoder(nn.Module):
    """One annotator style: the branches' prefixes, mixed by one transformer layer, as generator inputs."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.norm = nn.LayerNorm(width)

    def forward(self, prefixes: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layer(prefixes))


def build_backbone(config: NeuralCaptionerConfig) -> nn.Module:
    """A fresh (randomly initialised) backbone of the config's shape."""
    if config.backbone_type == RESNET:
        return ResNetModel(ResNetConfig(**config.backbone))
    return AutoModel.from_config(config.backbone_config())


# Config fields of a loaded model that describe the file, not the architecture.
_PROVENANCE_KEYS = ("transformers_version", "model_type", "architectures", "_name_or_path", "dtype", "torch_dtype")


def _architecture(model: nn.Module) -> dict[str, Any]:
    """A loaded transformers model's config as the fields that rebuild its shape (defaults left out)."""
    return {k: v for k, v in model.config.to_diff_dict().items() if k not in _PROVENANCE_KEYS}


def _pretrained_backbone(name: str, schema: Schema) -> tuple[nn.Module, str, dict[str, Any]]:
    """(backbone, model_type, config fields) of a transformers image model by hub name or local path; a ResNet
    through the predictor's builder, so both read a pretrained ResNet the same way."""
    try:
        model_type = AutoConfig.from_pretrained(name).model_type
        if model_type == RESNET:
            predictor = build_predictor(PredictorConfig.for_schema(schema, {}, pretrained=name), schema)
            return predictor.backbone, RESNET, predictor.config.backbone
        backbone = AutoModel.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot load a pretrained image backbone from {name!r}: {error_line(exc)}") from None
    return backbone, model_type, _architecture(backbone)


def build_captioner(config: NeuralCaptionerConfig, tokenizer: Any, schema: Schema | None = None) -> NeuralCaptioner:
    """A fresh captioner; with ``config.pretrained_backbone`` / ``pretrained_generator`` those parts start from
    their weights (hub name or local path), and the returned model's config holds their shapes."""
    schema = schema if schema is not None else load_schema()
    parts: dict[str, nn.Module] = {}
    if config.pretrained_backbone is not None:
        parts["backbone"], backbone_type, backbone = _pretrained_backbone(config.pretrained_backbone, schema)
        config = replace(config, backbone_type=backbone_type, backbone=backbone)
    if config.pretrained_generator is not None:
        try:
            parts["generator"] = GPT2LMHeadModel.from_pretrained(config.pretrained_generator)
        except (OSError, ValueError) as exc:
            raise InputError(
                f"cannot load a pretrained GPT-2 from {config.pretrained_generator!r}: {error_line(exc)}"
            ) from None
        config = replace(config, generator=_architecture(parts["generator"]))
    config.check("captioner")
    return NeuralCaptioner(config, tokenizer, schema, **parts)


class NeuralCaptioner(nn.Module):
    """The captioner; ``tokenizer`` (a transformers tokenizer with an end-of-text token) is needed to generate
    text, not to train on token ids or to check a file's shapes."""

    def __init__(
        self,
        config: NeuralCaptionerConfig,
        tokenizer: Any = None,
        schema: Schema | None = None,
        *,
        backbone: nn.Module | None = None,
        generator: GPT2LMHeadModel | None = None,
    ) -> None:
        super().__init__()
        check_labels(config, schema if schema is not None else load_schema(), "captioner")
        self.config, self.tokenizer = config, tokenizer
        self.backbone = backbone if backbone is not None else build_backbone(config)
        self.generator = generator if generator is not None else GPT2LMHeadModel(config.generator_config())
        width = self.generator.config.n_embd
        self.prefix = PrefixEncoder(config, _feature_width(self.backbone.config), width)
        self.styles = nn.ModuleList(StyleEncoder(width, self.generator.config.n_head) for _ in config.style_names)
        if tokenizer is not None:
            if tokenizer.eos_token_id is None:
                raise CaptionerError("the captioner's tokenizer has no end-of-text token")
            if len(tokenizer) > self.generator.config.vocab_size:
                raise CaptionerError(
                    f"the tokenizer has {len(tokenizer)} tokens, more than the generator's vocabulary "
                    f"({self.generator.config.vocab_size})"
                )
        # transformers 5 names the key/value cache argument `cache`; 4.x `past_key_values`
        parameters = inspect.signature(self.generator.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def eos_token_id(self) -> int:
        if self.tokenizer is None:
            raise ValueError("this captioner has no tokenizer")
        return int(self.tokenizer.eos_token_id)

    # ---- images in ----

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A PIL image as this model's input: float32 ``[3, H, W]`` at its image size and normalisation."""
        return self.preprocess_batch([image])[0]

    def preprocess_batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """PIL images as one input batch ``[N, 3, H, W]`` (the float work done once for the batch)."""
        pixels = torch.stack([pixel_tensor(image, self.config.image_size) for image in images])
        return normalise(pixels, self.config.mean, self.config.std)

    def encode(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The branches' prefixes ``[N, prefix_tokens, width]`` and each group's attribute logits."""
        features = self.backbone(pixel_values=pixel_values).last_hidden_state
        return self.prefix(stripes(features, self.config.bands))

    def style_prefixes(self, prefixes: torch.Tensor, style_index: torch.Tensor) -> torch.Tensor:
        """Each example's prefixes through its own style's encoder."""
        styled = torch.stack([encoder(prefixes) for encoder in self.styles])
        return styled[style_index, torch.arange(prefixes.shape[0], device=prefixes.device)]

    # ---- training ----

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        style_index: torch.Tensor,
        attribute_labels: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Losses of a batch: ``loss`` = ``language`` + attribute_weight * ``attributes`` (all float32 scalars).

        ``input_ids`` / ``attention_mask`` ``[N, L]``: each caption's tokens with its end-of-text token, padded
        on the right; ``style_index`` ``[N]`` 0 or 1; ``attribute_labels`` ``[N, groups]`` label ids (``-1`` =
        unknown)."""
        prefixes, logits = self.encode(pixel_values)
        embeddings = self.style_prefixes(prefixes, style_index)
        tokens = self.generator.get_input_embeddings()(input_ids)
        count = prefixes.shape[1]
        mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], count), attention_mask], 1)
        output = self.generator(inputs_embeds=torch.cat([embeddings, tokens], 1), attention_mask=mask)
        # position count - 1 + i (the last prefix vector, then each token) predicts token i
        predicted = output.logits[:, count - 1 : -1].float()
        targets = input_ids.masked_fill(attention_mask == 0, IGNORED)
        language = nn.functional.cross_entropy(predicted.transpose(1, 2), targets, ignore_index=IGNORED)
        attributes = attribute_loss(logits, attribute_labels, self.config.groups)
        return {
            "loss": language + self.config.attribute_weight * attributes,
            "language": language,
            "attributes": attributes,
        }

    # ---- generation ----

    @torch.inference_mode()
    def generate(
        self,
        pixel_values: torch.Tensor,
        style_index: int,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seeds: Sequence[int] | None = None,
    ) -> list[str]:
        """One text per image in style ``style_index``: greedy at ``temperature`` 0, else sampled at that
        temperature with image i's own generator seeded by ``seeds[i]``."""
        if style_index not in range(len(self.styles)):
            raise ValueError(f"style_index must be 0 or 1, got {style_index}")
        if temperature < 0 or max_new_tokens < 1:
            raise ValueError(f"need temperature >= 0 and max_new_tokens >= 1, got {temperature}, {max_new_tokens}")
        count = pixel_values.shape[0]
        if temperature > 0 and (seeds is None or len(seeds) != count):
            raise ValueError("sampling (temperature > 0) needs one seed per image")
        self.eval()
        eos = self.eos_token_id
        prefixes, _ = self.encode(pixel_values.to(self.device, torch.float32))
        random = [torch.Generator().manual_seed(int(s)) for s in seeds] if temperature > 0 else None
        output = self.generator(inputs_embeds=self.styles[style_index](prefixes), use_cache=True)
        chosen: list[torch.Tensor] = []
        done = torch.zeros(count, dtype=torch.bool, device=self.device)
        room = self.generator.config.n_positions - prefixes.shape[1]
        for step in range(min(max_new_tokens, room)):
            token = _choose(output.logits[:, -1].float(), temperature, random).masked_fill(done, eos)
            chosen.append(token)
            done |= token == eos
            if bool(done.all()) or step + 1 == min(max_new_tokens, room):
                break
            cache = output.cache if hasattr(output, "cache") else output.past_key_values
            output = self.generator(input_ids=token[:, None], use_cache=True, **{self._cache_argument: cache})
        rows = torch.stack(chosen, 1).tolist()
        return [self.tokenizer.decode(_until(row, eos), skip_special_tokens=True).strip() for row in rows]


def _choose(logits: torch.Tensor, temperature: float, random: list[torch.Generator] | None) -> torch.Tensor:
    """The next token of each row: the most likely, or one drawn from the row's own generator."""
    if random is None:
        return logits.argmax(dim=1)
    probabilities = torch.softmax(logits / temperature, dim=1).cpu()
    drawn = [torch.multinomial(row, 1, generator=g) for row, g in zip(probabilities, random)]
    return torch.cat(drawn).to(logits.device)


def _until(tokens: list[int], eos: int) -> list[int]:
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def attribute_loss(logits: Mapping[str, torch.Tensor], labels: torch.Tensor, groups: Sequence[str]) -> torch.Tensor:
    """The mean over groups of each group's cross-entropy over the examples whose label is known (a group no
    example of the batch labels adds 0), in float32."""
    total = labels.new_zeros((), dtype=torch.float32)
    for column, group in enumerate(groups):
        target = labels[:, column]
        known = target != IGNORED
        summed = nn.functional.cross_entropy(logits[group].float(), target, ignore_index=IGNORED, reduction="sum")
        total = total + summed / known.sum().clamp_min(1)
    return total / len(groups)
