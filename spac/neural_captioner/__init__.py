"""The neural SPAC captioner (issue 21): image prefix encoder with one branch per attribute group plus a sentence
branch, two style encoders, a GPT-2 generator; its files, and its trainer."""
