"""The corpus rules: the paper's filters over predicted attributes, and identity cleaning."""
