"""Data package: the SPAC attribute vocabulary, sentence library and style modules (YAML).

spac validates them when it loads them.
"""
