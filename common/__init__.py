"""Project-wide helpers that are not the SPAC method: one-line errors and CLI conventions, devices, stable
digests, image normalisation and the shared training kit. Imports no other package of this project."""
