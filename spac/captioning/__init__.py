"""SPAC's template + style captioner and its parts (slot language, sentence library, style modules, grammar).
Pure Python: no torch, no spaCy (asserted by tests/test_house_rules.py)."""
