"""Benchmark: the whole semantic pass after embedding at 100k synthetic questions (search at the rule's floor,
then the content-word overlap bar), i.e. what `lib.dedup.semantic_pairs` does, on cached embeddings.

    python benchmarks/bench_semantic_rule.py   # after bench_dedup.py built the cache
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


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
    return {"n": n, "floor_cosine": cfg.semantic_threshold, "search_seconds": round(search_s, 2),
            "pairs_at_floor": len(found.pairs), "overlap_rule_seconds": round(overlap_s, 2),
            "pairs_kept_by_rule": kept, "total_seconds": round(search_s + overlap_s, 2),
            "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(main()))
