"""Benchmark: near-duplicate removal at 10k / 100k (/ 1M) questions, against datasketch in the same run.

Lexical pass: `lexical_near_duplicates` (vectorised MinHash + LSH + exact Jaccard) against a plain
datasketch MinHashLSH with the same shingles, threshold, num_perm and banding weights (candidates verified
by datasketch's estimated Jaccard). Each measurement runs in its own subprocess, so its peak memory
(ru_maxrss) is its own; the synthetic questions are built inside it and count towards both.
Semantic pass: questions embedded per second (all-MiniLM-L6-v2, bf16 and fp32) and the blocked neighbour
search at 100k against brute force, with the search's recall at 20k.
Quality: precision, recall and F1 of the whole dedup (exact + lexical + semantic, clustered) on the
hand-labelled set research_tuner_tests/data/paraphrase_quads.tsv.
Results go to benchmarks/results/dedup.json. Run under the CPU lock:

    python benchmarks/bench_dedup.py [--with-1m] [--baseline-max 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
RESULTS = HERE / "results" / "dedup.json"
CACHE = HERE / ".cache"
GENERATOR_VERSION = "v2"  # bump when synthetic_questions changes, so cached embeddings are not reused


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_lexical(n: int, threshold: float, num_perm: int) -> dict:
    from synthetic_questions import synthetic_questions

    from research_tuner.lib.shared.similarity.minhash import exact_jaccard, lexical_near_duplicates, shingle

    questions, source = synthetic_questions(n)
    t0 = time.perf_counter()
    result = lexical_near_duplicates(questions, threshold, num_perm, shingle_size=2)
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    # Recall on the injected near-copies whose exact Jaccard reaches the threshold.
    copies = np.flatnonzero(source >= 0)
    truth_pairs = np.sort(np.stack([source[copies], copies], axis=1), axis=1)
    truth_pairs = truth_pairs[truth_pairs[:, 0] != truth_pairs[:, 1]]
    sh = shingle([questions[i] for i in np.unique(truth_pairs)], 2)
    local = {q: k for k, q in enumerate(np.unique(truth_pairs))}
    jac = exact_jaccard(sh, np.vectorize(local.get)(truth_pairs))
    above = {tuple(p) for p in truth_pairs[jac >= threshold]}
    found = {tuple(p) for p in result.pairs}
    return {"n": n, "seconds": round(seconds, 2), "peak_mb": peak, "pairs": len(result.pairs),
            "candidates": result.candidates, "bands": result.bands, "rows": result.rows,
            "phase_seconds": result.seconds,
            "injected_pairs_at_or_above_threshold": len(above),
            "recall_on_injected": round(len(above & found) / max(1, len(above)), 4)}


def child_datasketch(n: int, threshold: float, num_perm: int) -> dict:
    from datasketch import MinHash, MinHashLSH
    from synthetic_questions import synthetic_questions

    from research_tuner.lib.shared.ids import normalize_question
    from research_tuner.lib.shared.similarity.minhash import LSH_WEIGHTS

    questions, _ = synthetic_questions(n)
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    hashes = []
    for i, q in enumerate(questions):
        words = normalize_question(q).split()
        shingles = {" ".join(words[k:k + 2]).encode() for k in range(max(1, len(words) - 1))}
        m = MinHash(num_perm=num_perm)
        m.update_batch(list(shingles))
        lsh.insert(i, m)
        hashes.append(m)
    pairs = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j > i and m.jaccard(hashes[j]) >= threshold:
                pairs.add((i, j))
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": round(seconds, 2), "peak_mb": _peak_mb(), "pairs": len(pairs), "bands": lsh.b,
            "rows": lsh.r}


def _embeddings(n: int) -> np.ndarray:
    """Embeddings of the first n synthetic questions, cached in benchmarks/.cache (they take minutes)."""
    from synthetic_questions import synthetic_questions

    from research_tuner.lib.shared.similarity.embeddings import embed

    path = CACHE / f"embeddings_{GENERATOR_VERSION}_{n}.npy"
    if path.exists():
        return np.load(path)
    questions, _ = synthetic_questions(n)
    vectors = embed(questions, batch_size=128, precision="bf16")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def child_embed(n: int, precision: str) -> dict:
    from synthetic_questions import synthetic_questions

    from research_tuner.lib.shared.similarity.embeddings import embed, load_embedder

    t0 = time.perf_counter()
    load_embedder()
    load_s = time.perf_counter() - t0
    questions, _ = synthetic_questions(n, seed=123)
    embed(questions[:64], precision=precision)  # warm-up
    t0 = time.perf_counter()
    embed(questions[64:], batch_size=128, precision=precision)
    seconds = time.perf_counter() - t0
    return {"n": n - 64, "precision": precision, "model_load_s": round(load_s, 1), "seconds": round(seconds, 2),
            "questions_per_s": round((n - 64) / seconds, 1), "peak_mb": _peak_mb()}


def child_search(n: int, threshold: float, brute: bool) -> dict:
    from research_tuner.lib.shared.similarity.semantic import _brute_force, semantic_near_duplicates

    vectors = _embeddings(n)
    t0 = time.perf_counter()
    blocked = semantic_near_duplicates(vectors, threshold)
    seconds = time.perf_counter() - t0
    out = {"n": n, "threshold": threshold, "seconds": round(seconds, 2), "pairs": len(blocked.pairs),
           "cells": blocked.cells, "cosines_computed": blocked.compared,
           "share_of_all_pairs": round(blocked.compared / (n * (n - 1) / 2), 4), "peak_mb": _peak_mb()}
    if brute:
        t0 = time.perf_counter()
        exact = _brute_force(vectors, threshold)
        out["brute_force_seconds"] = round(time.perf_counter() - t0, 2)
        truth, found = {tuple(p) for p in exact.pairs}, {tuple(p) for p in blocked.pairs}
        out["recall_vs_brute_force"] = round(len(truth & found) / max(1, len(truth)), 4)
        out["speedup_vs_brute_force"] = round(out["brute_force_seconds"] / seconds, 2)
    return out


def labelled_quality() -> dict:
    """Pairwise precision/recall/F1 on the hand-labelled quads: held-out (thresholds chosen by cross-validation
    over topics) for the overlap-aware rule and for a plain cosine threshold, and the defaults in-sample."""
    from labelled_paraphrases import cross_validated_quality, later_topics_quality, load_quads, pair_counts, scores

    from research_tuner.lib.shared.similarity.pairs import clusters_of, duplicate_pairs
    from research_tuner.settings import DedupSettings

    texts, topic, role = load_quads()
    n = len(texts) // 4
    out = {"questions": len(texts), "topics": n,
           "held_out_overlap_rule": cross_validated_quality(),
           "held_out_plain_cosine": cross_validated_quality(plain_cosine_only=True),
           "later_topics": later_topics_quality()}
    default = DedupSettings()
    in_sample = {}
    for name, cfg in {"exact+lexical": default.model_copy(update={"semantic": False}),
                      "exact+lexical+semantic": default}.items():
        labels = clusters_of(len(texts), duplicate_pairs(texts, cfg))
        by = {r: float((labels[:n] == labels[k * n:(k + 1) * n]).mean())
              for k, r in enumerate(["question", "paraphrase", "light_edit", "hard_negative"]) if k}
        in_sample[name] = {**scores(*pair_counts(labels, topic, role)),
                           "paraphrase_caught": round(by["paraphrase"], 3),
                           "light_edit_caught": round(by["light_edit"], 3),
                           "hard_negative_wrongly_merged": round(by["hard_negative"], 3)}
    out["defaults_in_sample (thresholds fitted on all topics; not a held-out number)"] = in_sample
    out["defaults"] = {"lexical_jaccard": default.lexical_threshold, "semantic_threshold": default.semantic_threshold,
                       "semantic_overlap_slope": default.semantic_overlap_slope,
                       "semantic_max_threshold": default.semantic_max_threshold}
    return out


def run_child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="*")
    parser.add_argument("--with-1m", action="store_true", help="also run the lexical pass at 1,000,000 questions")
    parser.add_argument("--baseline-max", type=int, default=100_000, help="largest size datasketch runs at")
    parser.add_argument("--search-n", type=int, default=100_000)
    parser.add_argument("--labelled-only", action="store_true",
                        help="recompute only the labelled-set section of an existing results file")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--cosine", type=float, default=None,
                        help="search threshold; default: DedupSettings().semantic_threshold (the search's floor)")
    args = parser.parse_args()
    if args.cosine is None:
        from research_tuner.settings import DedupSettings

        args.cosine = DedupSettings().semantic_threshold
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        if kind == "lexical":
            out = child_lexical(n, args.threshold, args.num_perm)
        elif kind == "datasketch":
            out = child_datasketch(n, args.threshold, args.num_perm)
        elif kind == "embed":
            out = child_embed(n, args.child[2])
        else:
            out = child_search(n, args.cosine, brute=args.child[2] == "brute")
        print(json.dumps(out))
        return

    if args.labelled_only:
        result = json.loads(RESULTS.read_text())
        result["labelled_set"] = labelled_quality()
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result["labelled_set"], indent=2))
        return

    import torch

    sizes = [10_000, 100_000] + ([1_000_000] if args.with_1m else [])
    common = ["--threshold", str(args.threshold), "--num-perm", str(args.num_perm)]
    lexical = {}
    for n in sizes:
        ours = run_child("lexical", str(n), *common)
        entry = {"ours": ours}
        if n <= args.baseline_max:
            base = run_child("datasketch", str(n), *common)
            entry["datasketch"] = base
            entry["speedup"] = round(base["seconds"] / ours["seconds"], 2)
            found_by_both = ours["pairs"] and base["pairs"]
            entry["pairs_ours_vs_datasketch"] = f"{ours['pairs']} vs {base['pairs']}" if found_by_both else None
        else:
            entry["datasketch"] = f"skipped above --baseline-max {args.baseline_max} (about 10x the 100k time)"
        lexical[str(n)] = entry
    growth = {f"{a}->{b}": {"size_x": b // a,
                            "time_x": round(lexical[str(b)]["ours"]["seconds"] / lexical[str(a)]["ours"]["seconds"], 2),
                            "candidates_x": round(lexical[str(b)]["ours"]["candidates"]
                                                  / max(1, lexical[str(a)]["ours"]["candidates"]), 2),
                            "pairs_x": round(lexical[str(b)]["ours"]["pairs"] / max(1, lexical[str(a)]["ours"]["pairs"]), 2)}
              for a, b in zip(sizes, sizes[1:])}
    semantic = {
        "embedding_bf16": run_child("embed", "2064", "bf16"),
        "embedding_fp32": run_child("embed", "1064", "fp32"),
        "search_20k": run_child("search", "20000", "brute", "--cosine", str(args.cosine)),
        f"search_{args.search_n // 1000}k": run_child("search", str(args.search_n), "brute", "--cosine",
                                                        str(args.cosine)),
    }
    result = {
        "lexical": {"threshold_jaccard": args.threshold, "num_perm": args.num_perm, "shingle_words": 2,
                    "sizes": lexical, "growth": growth},
        "semantic": semantic,
        "labelled_set": labelled_quality(),
        "machine": {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "python": platform.python_version(), "numpy": np.__version__},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
