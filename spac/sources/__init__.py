"""Readers of text sources users already have: human-caption files, the released corpus, streamed JSON lists."""
