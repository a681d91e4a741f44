"""Data package: the SPAC attribute vocabulary, sentence library and style modules (YAML), validated by spac when loaded."""
