"""Knowledge mined from human captions: attribute labels, the schema's coverage, masked library sentences."""
