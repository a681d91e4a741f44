"""The synthesis job (``python -m pipelines.synthesize``): person images -> predicted attributes -> filtered,
captioned shards. Its counters are in the namespace ``synthesize``; it imports no other job."""
