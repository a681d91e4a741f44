"""Texts written by a caption model, grounded in SPAC's attributes and checked before they are kept.

Imports spac.attributes, spac.language, spac.captioning and common only; never Beam, pipelines, plip or shards.
torch and transformers are imported only by `spac.generation.in_process`, lazily, by whoever picks that backend.
"""
