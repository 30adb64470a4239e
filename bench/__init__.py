"""Benchmarks: `python3 dev.py bench` (or `python -m bench [name ...]`) prints one table per benchmark."""
