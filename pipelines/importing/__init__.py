"""The import job (``python -m pipelines.import_corpus``): a released dataset's JSON file -> shards. Its counters
are in the namespace ``import_corpus``; it imports no other job."""
