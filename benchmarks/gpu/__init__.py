"""The GPU training benchmark's parts (benchmarks/bench_training_gpu.py runs them) and the scripts of its device run."""
