"""A text generator running a vision-language model in this process: transformers' AutoModelForImageTextToText and
AutoProcessor by hub name or local folder, batched generation with left padding, bf16 on CUDA and fp32 on CPU.

Determinism: greedy decoding (the default) gives the same text for the same request on the same device and
dtype. Sampling (temperature > 0) draws each request's tokens from its own random generator, seeded from the run's
seed, the sample key and the style (`request_seed`), so which other requests share its batch does not change its
draws; batching can still change the logits in their last bits, which may rarely flip a draw.
"""

from __future__ import annotations

import copy
import io
import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor, LogitsProcessor
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from common.devices import resolve_device
from common.digests import file_sha256
from common.errors import InputError, error_line
from spac.generation.requests import CaptionRequest, DecodingSettings, GeneratedText
from spac.generation.server import request_seed

logger = logging.getLogger(__name__)


class CaptionModelError(InputError):
    """The caption model could not be loaded."""


def model_files_sha256(folder: Path) -> dict[str, str]:
    """sha256 of every file of a local model folder (by path relative to it; hidden files and folders left out:
    a download cache's bookkeeping is not the model)."""
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    return {path.relative_to(folder).as_posix(): file_sha256(path) for path in files}


def describe_model(name_or_path: str, decoding: DecodingSettings) -> dict[str, Any]:
    """For job.json, without loading the model (a launcher describes what its workers will load): a local
    folder's files by sha256; a hub name only by name."""
    described: dict[str, Any] = {"kind": "in_process", "model": name_or_path, "decoding": asdict(decoding)}
    if Path(name_or_path).is_dir():
        described["files_sha256"] = model_files_sha256(Path(name_or_path))
    return described


class InProcessGenerator:
    """Writes one text per request with a vision-language model loaded once; never raises for one request.

    A request whose image does not decode fails alone; a batch whose generation raises (out of memory, a
    processor that refuses the input) fails as a whole; both with failure kind "error".
    """

    def __init__(
        self, name_or_path: str, device: str = "auto", decoding: DecodingSettings | None = None, batch_size: int = 8
    ) -> None:
        self.name_or_path = name_or_path
        self.decoding = decoding or DecodingSettings()
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self._processor, self._model = _load(name_or_path, self.device, self.dtype)

    def describe(self) -> dict[str, Any]:
        return describe_model(self.name_or_path, self.decoding)

    def generate(self, requests: Sequence[CaptionRequest]) -> list[GeneratedText]:
        """One answer per request, in the same order, ``batch_size`` requests per forward pass."""
        answers: list[GeneratedText] = []
        for start in range(0, len(requests), self.batch_size):
            answers += self._generate_batch(requests[start : start + self.batch_size])
        return answers

    def _generate_batch(self, batch: Sequence[CaptionRequest]) -> list[GeneratedText]:
        images = [_decode(request.image_jpeg) for request in batch]
        usable = [index for index, image in enumerate(images) if image is not None]
        answers = [GeneratedText(None, failure="error")] * len(batch)
        if not usable:
            return answers
        try:
            texts = self._texts([batch[i] for i in usable], [images[i] for i in usable])
        except Exception as error:  # the model's failure on one batch must not end the job
            logger.warning(
                "caption model %s failed on a batch of %d: %s: %s",
                self.name_or_path,
                len(usable),
                type(error).__name__,
                error_line(error),
            )
            return answers
        for index, text in zip(usable, texts):
            answers[index] = GeneratedText(text.strip())
        return answers

    def _texts(self, batch: Sequence[CaptionRequest], images: list[Image.Image]) -> list[str]:
        prompts = [
            self._processor.apply_chat_template(_messages(request), add_generation_prompt=True) for request in batch
        ]
        inputs = self._on_device(
            self._processor(text=prompts, images=[[image] for image in images], padding=True, return_tensors="pt")
        )
        sampling = self.decoding.temperature > 0
        processors = (
            [_SeededSampler([request_seed(self.decoding, r) for r in batch], self.decoding.temperature, self.device)]
            if sampling
            else []
        )
        with torch.inference_mode():
            output = self._model.generate(
                **inputs, max_new_tokens=self.decoding.max_new_tokens, do_sample=False, logits_processor=processors
            )
        return self._processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def phrase_scores(self, image_jpeg: bytes, question: str, phrases: Sequence[str]) -> list[float] | None:
        """Each phrase's mean log-probability per token as the answer to ``question`` about the image
        (spac.generation.attributes ranks a group's values by it); None when the image does not decode or the
        model fails.

        The image and question are read once; their cache is shared by every phrase, ``batch_size`` phrases per
        forward pass (right-padded after the shared prefix, so padding never precedes a scored token).
        """
        image = _decode(image_jpeg)
        if image is None:
            return None
        try:
            prefix = self._prefix(image, question)
            scores: list[float] = []
            for start in range(0, len(phrases), self.batch_size):
                scores += self._answer_scores(prefix, phrases[start : start + self.batch_size])
        except Exception as error:  # the model's failure on one image must not end the job
            logger.warning(
                "caption model %s failed to score an image: %s: %s",
                self.name_or_path,
                type(error).__name__,
                error_line(error),
            )
            return None
        return scores

    def _prefix(self, image: Image.Image, question: str) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """The cache of the chat prompt (image and question), its attention mask, and the log-probabilities of
        the answer's first token."""
        request = CaptionRequest("", b"", "", question, "attributes")
        prompt = self._processor.apply_chat_template(_messages(request), add_generation_prompt=True)
        inputs = self._on_device(self._processor(text=[prompt], images=[[image]], return_tensors="pt"))
        with torch.inference_mode():
            output = self._model(**inputs, use_cache=True)
        return output.cache, inputs["attention_mask"], torch.log_softmax(output.logits[0, -1].float(), dim=-1)

    def _answer_scores(self, prefix: tuple[Any, torch.Tensor, torch.Tensor], phrases: Sequence[str]) -> list[float]:
        cache, prefix_mask, first = prefix
        tokenizer = self._processor.tokenizer
        answers = [
            tokenizer(" " + phrase, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]
            for phrase in phrases
        ]
        width = max(map(len, answers))
        tokens = torch.full((len(answers), width), tokenizer.pad_token_id, device=self.device)
        mask = torch.zeros((len(answers), width), dtype=prefix_mask.dtype, device=self.device)
        for row, answer in enumerate(answers):
            tokens[row, : len(answer)] = torch.tensor(answer)
            mask[row, : len(answer)] = 1
        shared = copy.deepcopy(cache)  # each chunk extends its own copy of the prefix
        shared.batch_repeat_interleave(len(answers))
        full_mask = torch.cat([prefix_mask.expand(len(answers), -1), mask], dim=1)
        with torch.inference_mode():
            logits = self._model(input_ids=tokens, attention_mask=full_mask, cache=shared).logits
        following = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, tokens[:, 1:, None])[:, :, 0]
        token_scores = torch.cat([first[tokens[:, :1]], following], dim=1) * mask
        return (token_scores.sum(dim=1) / mask.sum(dim=1)).tolist()

    def _on_device(self, inputs: Any) -> dict[str, torch.Tensor]:
        return {
            name: value.to(self.device, self.dtype) if value.is_floating_point() else value.to(self.device)
            for name, value in inputs.items()
        }


class _SeededSampler(LogitsProcessor):
    """Sampling with one random generator per request: draws each row's next token from its own generator and
    leaves only that token for the greedy step (transformers' sampling shares one generator across the batch)."""

    def __init__(self, seeds: list[int], temperature: float, device: torch.device) -> None:
        self.temperature = temperature
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probabilities = torch.softmax(scores.float() / self.temperature, dim=-1)
        chosen = torch.cat(
            [torch.multinomial(row, 1, generator=generator) for row, generator in zip(probabilities, self.generators)]
        )
        only_chosen = torch.full_like(scores, float("-inf"))
        return only_chosen.scatter_(1, chosen[:, None], 0.0)


def check_model(name_or_path: str) -> None:
    """What a launcher checks before any worker loads the model, in a second and without the weights: its config
    and processor read (a local folder never reaches for the hub) and an architecture AutoModelForImageTextToText
    knows; CaptionModelError in one line otherwise."""
    local = Path(name_or_path).is_dir()
    try:
        config = AutoConfig.from_pretrained(name_or_path, local_files_only=local)
        AutoProcessor.from_pretrained(name_or_path, local_files_only=local)
    except (OSError, ValueError, KeyError, ImportError) as error:
        raise CaptionModelError(f"cannot load the caption model {name_or_path!r}: {error_line(error)}") from None
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise CaptionModelError(
            f"cannot load the caption model {name_or_path!r}: a {config.model_type!r} model reads no images "
            "(not an AutoModelForImageTextToText architecture)"
        )


def _load(name_or_path: str, device: torch.device, dtype: torch.dtype) -> tuple[Any, Any]:
    """The processor (padding on the left, for batched generation) and the model in eval mode on the device;
    a local folder never reaches for the hub."""
    local = Path(name_or_path).is_dir()
    try:
        processor = AutoProcessor.from_pretrained(name_or_path, local_files_only=local)
        model = AutoModelForImageTextToText.from_pretrained(name_or_path, local_files_only=local, dtype=dtype)
    except (OSError, ValueError, KeyError, ImportError) as error:  # ImportError: e.g. a processor needing torchvision
        raise CaptionModelError(f"cannot load the caption model {name_or_path!r}: {error_line(error)}") from None
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor, model.to(device).eval()


def _messages(request: CaptionRequest) -> list[dict[str, Any]]:
    user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": request.instruction}]}
    system = [{"role": "system", "content": [{"type": "text", "text": request.system}]}] if request.system else []
    return [*system, user]


def _decode(image_jpeg: bytes) -> Image.Image | None:
    """The request's image in RGB, or None when it does not decode (that request fails alone)."""
    try:
        with Image.open(io.BytesIO(image_jpeg)) as image:
            return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
