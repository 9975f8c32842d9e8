"""Benchmark: the whole semantic pass after embedding at 100k synthetic questions (search at the rule's floor,
then the content-word overlap bar), i.e. what `semantic_pairs` (lib/shared/similarity/pairs.py) does, on the
embeddings bench_dedup.py cached (it embeds them itself when the cache is missing, which takes several minutes).
Results go to benchmarks/results/semantic_rule.json.

    python benchmarks/bench_semantic_rule.py [--n 100000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_io import machine, write_results  # noqa: E402


def main(n: int = 100_000) -> dict:
    from bench_dedup import _embeddings
    from synthetic_questions import synthetic_questions

    from research_tuner.lib.shared.similarity.semantic import content_jaccard, required_cosine, semantic_near_duplicates
    from research_tuner.settings import DedupSettings

    cfg = DedupSettings()
    texts, _ = synthetic_questions(n)
    vectors = _embeddings(n)
    t0 = time.perf_counter()
    found = semantic_near_duplicates(vectors, cfg.semantic_threshold, cfg.probes)
    search_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bar = required_cosine(content_jaccard(texts, found.pairs), cfg.semantic_threshold, cfg.semantic_overlap_slope,
                          cfg.semantic_max_threshold)
    kept = int((found.similarity >= bar).sum())
    overlap_s = time.perf_counter() - t0
    return {"n": n, "overlap_slope": cfg.semantic_overlap_slope, "max_threshold": cfg.semantic_max_threshold,
            "floor_cosine": cfg.semantic_threshold, "search_seconds": round(search_s, 2),
            "pairs_at_floor": len(found.pairs), "overlap_rule_seconds": round(overlap_s, 2),
            "pairs_kept_by_rule": kept, "total_seconds": round(search_s + overlap_s, 2),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "machine": machine()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    result = main(parser.parse_args().n)
    print(json.dumps(result))
    print(f"wrote {write_results('semantic_rule', result)}")
