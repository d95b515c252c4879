"""buildtail's benchmark suite: see BENCHMARKS.md and ``bench/run_all.py``."""
