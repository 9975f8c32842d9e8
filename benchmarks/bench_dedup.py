"""Benchmark: near-duplicate removal at 10k / 100k (/ 1M) questions, against datasketch in the same run.

Lexical pass: `lexical_near_duplicates` (vectorised MinHash + LSH + exact Jaccard) against datasketch's
MinHashLSH with the same shingles, threshold, num_perm and banding weights (candidates verified by datasketch's
estimated Jaccard), two ways: one `MinHash` and one `insert` per question (its README's way), and its bulk path
(`MinHash.bulk`, `MinHashLSH.insertion_session`). For every method: the pairs found, how many of them reach the
threshold in exact Jaccard, and the recall on the injected near-copies at or above the threshold, measured by the
same code. Each measurement runs in its own subprocess, so its peak memory (ru_maxrss) is its own; the
synthetic questions are built inside it and count towards all.
Semantic pass: questions embedded per second (all-MiniLM-L6-v2, bf16 and fp32) and the blocked neighbour
search at 100k against brute force, with the search's recall at 20k.
Quality: precision, recall and F1 of the whole dedup (exact + lexical + semantic, clustered) on the
hand-labelled set research_tuner_tests/data/paraphrase_quads.tsv.
Results go to benchmarks/results/dedup.json. Run on a quiet machine:

    python benchmarks/bench_dedup.py [--with-1m] [--baseline-max N] [--parts lexical,semantic,labelled]
    python benchmarks/bench_dedup.py --sizes 2000 --parts lexical   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_io import machine, read_results, write_results  # noqa: E402

CACHE = HERE / ".cache"
BASELINES = ("datasketch_one_by_one", "datasketch_bulk")
PARTS = ("lexical", "semantic", "labelled")
TARGET_SPEEDUP_VS_BULK_AT_1M = 3.0
GENERATOR_VERSION = "v2"  # bump when synthetic_questions changes, so cached embeddings are not reused


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def pair_quality(questions: list[str], source: np.ndarray, pairs: np.ndarray, threshold: float) -> dict:
    """How good one method's pairs are, measured the same way for every method: how many of them reach the
    threshold in exact Jaccard of their shingle sets, and the recall on the injected near-copies whose exact
    Jaccard reaches the threshold."""
    from research_tuner.lib.shared.similarity.minhash import exact_jaccard, shingle

    copies = np.flatnonzero(source >= 0)
    truth = np.sort(np.stack([source[copies], copies], axis=1), axis=1)
    truth = truth[truth[:, 0] != truth[:, 1]]
    pairs = np.sort(np.asarray(pairs, dtype=np.int64).reshape(-1, 2), axis=1)
    both = np.concatenate([truth, pairs])
    rows = np.unique(both)
    sh = shingle([questions[i] for i in rows], 2)
    jac = exact_jaccard(sh, np.searchsorted(rows, both))
    above = {tuple(p) for p in truth[jac[:len(truth)] >= threshold]}
    found = {tuple(p) for p in pairs}
    return {"pairs_at_or_above_threshold": int((jac[len(truth):] >= threshold).sum()),
            "injected_pairs_at_or_above_threshold": len(above),
            "recall_on_injected": round(len(above & found) / max(1, len(above)), 4)}


def child_lexical(n: int, threshold: float, num_perm: int) -> dict:
    from synthetic_questions import synthetic_questions

    from research_tuner.lib.shared.similarity.minhash import lexical_near_duplicates

    questions, source = synthetic_questions(n)
    t0 = time.perf_counter()
    result = lexical_near_duplicates(questions, threshold, num_perm, shingle_size=2)
    seconds = time.perf_counter() - t0
    peak = _peak_mb()
    return {"n": n, "seconds": round(seconds, 2), "peak_mb": peak, "pairs": len(result.pairs),
            "candidates": result.candidates, "bands": result.bands, "rows": result.rows,
            "phase_seconds": result.seconds, **pair_quality(questions, source, result.pairs, threshold)}


def _datasketch_shingles(questions: list[str]):
    """The project's shingles (2-word, after `normalize_question`), as the byte strings datasketch hashes, one
    question's list at a time."""
    from research_tuner.lib.shared.ids import normalize_question

    for q in questions:
        words = normalize_question(q).split()
        yield list({" ".join(words[k:k + 2]).encode() for k in range(max(1, len(words) - 1))})


def child_datasketch(n: int, threshold: float, num_perm: int, bulk: bool) -> dict:
    """datasketch MinHashLSH with the same shingles, threshold, num_perm and banding weights; candidates verified
    by datasketch's estimated Jaccard. `bulk`: `MinHash.bulk` and an `insertion_session` (datasketch's fast path);
    else one `MinHash` and one `insert` per question, as its README shows."""
    from datasketch import MinHash, MinHashLSH
    from synthetic_questions import synthetic_questions

    from research_tuner.lib.shared.similarity.minhash import LSH_WEIGHTS

    questions, source = synthetic_questions(n)
    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    if bulk:
        hashes = MinHash.bulk(_datasketch_shingles(questions), num_perm=num_perm)
        with lsh.insertion_session() as session:
            for i, m in enumerate(hashes):
                session.insert(i, m, check_duplication=False)
    else:
        hashes = []
        for i, shingles in enumerate(_datasketch_shingles(questions)):
            m = MinHash(num_perm=num_perm)
            m.update_batch(shingles)
            lsh.insert(i, m)
            hashes.append(m)
    pairs = set()
    for i, m in enumerate(hashes):
        for j in lsh.query(m):
            if j > i and m.jaccard(hashes[j]) >= threshold:
                pairs.add((i, j))
    seconds = time.perf_counter() - t0
    peak, bands, rows = _peak_mb(), lsh.b, lsh.r
    del hashes, lsh
    return {"n": n, "seconds": round(seconds, 2), "peak_mb": peak, "pairs": len(pairs), "bands": bands,
            "rows": rows, **pair_quality(questions, source, np.array(sorted(pairs)), threshold)}


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


def lexical_runs(sizes: list[int], args) -> dict:
    """The project's lexical pass and both datasketch ways at each size, each in its own process."""
    common = ["--threshold", str(args.threshold), "--num-perm", str(args.num_perm)]
    lexical = {}
    for n in sizes:
        entry = {"ours": run_child("lexical", str(n), *common)}
        for way in BASELINES:
            if args.baseline_max is not None and n > args.baseline_max:
                entry[way] = f"skipped above --baseline-max {args.baseline_max}"
                continue
            entry[way] = run_child(way, str(n), *common)
            entry[f"speedup_vs_{way.removeprefix('datasketch_')}"] = round(
                entry[way]["seconds"] / entry["ours"]["seconds"], 2)
        lexical[str(n)] = entry
    ours = {n: lexical[str(n)]["ours"] for n in sizes}
    growth = {f"{a}->{b}": {"size_x": b // a,
                            "time_x": round(ours[b]["seconds"] / ours[a]["seconds"], 2),
                            "candidates_x": round(ours[b]["candidates"] / max(1, ours[a]["candidates"]), 2),
                            "pairs_x": round(ours[b]["pairs"] / max(1, ours[a]["pairs"]), 2)}
              for a, b in zip(sizes, sizes[1:])}
    largest = lexical[str(max(sizes))]
    target = None
    if max(sizes) >= 1_000_000 and isinstance(largest.get("datasketch_bulk"), dict):
        target = largest["speedup_vs_bulk"] >= TARGET_SPEEDUP_VS_BULK_AT_1M
    return {"threshold_jaccard": args.threshold, "num_perm": args.num_perm, "shingle_words": 2,
            "sizes": lexical, "growth": growth,
            f"target_at_least_{TARGET_SPEEDUP_VS_BULK_AT_1M:g}x_datasketch_bulk_at_1m": target}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="*")
    parser.add_argument("--with-1m", action="store_true", help="also run the lexical pass at 1,000,000 questions")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated lexical sizes; default 10000,100000 (and 1000000 with --with-1m)")
    parser.add_argument("--baseline-max", type=int, default=None,
                        help="largest size the datasketch baselines run at (default: every size)")
    parser.add_argument("--parts", default="lexical,semantic,labelled",
                        help="which parts to run; the others are kept from the existing results file")
    parser.add_argument("--search-n", type=int, default=100_000)
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
        elif kind in BASELINES:
            out = child_datasketch(n, args.threshold, args.num_perm, bulk=kind == "datasketch_bulk")
        elif kind == "embed":
            out = child_embed(n, args.child[2])
        else:
            out = child_search(n, args.cosine, brute=args.child[2] == "brute")
        print(json.dumps(out))
        return


    parts = set(args.parts.split(","))
    if unknown := parts - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}; choose from {','.join(PARTS)}")
    result = (read_results("dedup") or {}) if parts != set(PARTS) else {}
    if "lexical" in parts:
        sizes = ([int(v) for v in args.sizes.split(",")] if args.sizes
                 else [10_000, 100_000] + ([1_000_000] if args.with_1m else []))
        result["lexical"] = lexical_runs(sizes, args)
    if "semantic" in parts:
        result["semantic"] = {
            "embedding_bf16": run_child("embed", "2064", "bf16"),
            "embedding_fp32": run_child("embed", "1064", "fp32"),
            "search_20k": run_child("search", "20000", "brute", "--cosine", str(args.cosine)),
            f"search_{args.search_n // 1000}k": run_child("search", str(args.search_n), "brute", "--cosine",
                                                            str(args.cosine)),
        }
    if "labelled" in parts:
        result["labelled_set"] = labelled_quality()
    result["machine"] = machine()
    print(json.dumps(result, indent=2))
    print(f"wrote {write_results('dedup', result)}")


if __name__ == "__main__":
    main()
