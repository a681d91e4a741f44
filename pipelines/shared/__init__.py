"""The Beam pieces both jobs use: counters and stage timers, dead letters, corpus parts, the shard sink, job.json,
the shared flags and the launcher. Nothing here imports a job (``pipelines.synthesis``, ``pipelines.importing``)."""
