"""Benchmarks of Antrian: `python -m bench [issue|replay]` (see bench/README.md)."""
