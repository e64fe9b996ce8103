"""Benchmarks for the allocator (see BENCHMARKS.md; run: .venv/bin/python -m bench.run)."""
