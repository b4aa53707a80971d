"""The bench: ``python -m bench`` (``make bench``) measures ingestion, retrieval, streaming and
SciFact retrieval quality against baselines measured in the same run (see docs/benchmarks.md)."""
