"""Texts written by a caption model, grounded in SPAC's attributes and checked before they are kept.

Imports spac.attributes, spac.language, spac.captioning and common only; never Beam, pipelines, plip or shards.
torch and transformers are imported only by `spac.generation.in_process`, lazily, by whoever picks that backend.
This package imports none of its modules: a backend that needs only `requests` does not pay for spaCy.

- `requests`: the interface between the stage and its backends (CaptionRequest, GeneratedText, TextGenerator).
- `grounding`: which predicted values the stage trusts (the grounding of prompts and checks).
- `prompts`: prompts as data (templates/prompts) and the requests of one image.
- `checks`: the rules a generated text passes, one per rejection reason.
- `stage`: `generate_checked`, the stage itself: ask, check, ask again, fall back to SPAC's captions.
- `styled`: the same checks over a captioner with styles of its own (--captioner spac): its two texts, each kept
  or replaced by the template caption of its slot.
- `server`, `in_process`: the backends (an OpenAI-compatible server; a model in this process).
- `backends`: the choice of backend as picklable settings (described for job.json without loading a model).
- `attributes`: the same model as the attribute predictor (--predictor mllm): schema-constrained JSON from a
  server, or each value's likelihood in process.
"""
