"""dgraph's benchmarks: one harness (`python -m benchmarks`), cases declared in cases.py."""
