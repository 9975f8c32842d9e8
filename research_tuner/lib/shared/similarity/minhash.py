"""Lexical near-duplicates: word-shingle MinHash with LSH banding, vectorised with NumPy.

Why not datasketch's MinHashLSH: it hashes every shingle and inserts every signature in Python, on its bulk
path (`MinHash.bulk`, `insertion_session`) too; benchmarks/bench_dedup.py times both of its ways against this
module at up to a million questions. Here every step runs over whole arrays:

1. Each question's words (after `normalize_question`) are hashed once (pandas' vectorised SipHash);
   k-word shingles are mixed from consecutive word hashes.
2. MinHash: each of `num_perm` multiply-shift hash functions is applied to every shingle and the
   minimum per question is taken with `np.minimum.reduceat`, a block of questions at a time, with the
   permutation axis first so every pass runs over contiguous memory.
   Signatures are never kept whole: each block is folded straight into one 64-bit key per LSH band.
3. Candidates are questions that share any band key (found by sorting the keys of each band).
4. Candidates whose Jaccard, estimated from one byte of each MinHash value, is far below the threshold
   are dropped; the rest are verified by the exact Jaccard similarity of their shingle sets, so no pair
   below the threshold is ever reported.

Banding uses the (bands, rows) that minimise the weighted false-positive and false-negative
probability for the threshold, the same rule datasketch uses, so the two are comparable. False
negatives are weighted 0.9 and false positives 0.1: a false positive only costs one exact Jaccard
verification, a false negative is a duplicate that stays in the data.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from research_tuner.lib.shared.ids import normalize_question

_MIX = np.uint64(0x9E3779B97F4A7C15)
#: Buckets with more members than this are paired star-wise (each with the bucket's first member)
#: instead of all-pairs, so one huge bucket cannot make the candidate count quadratic.
MAX_BUCKET_ALL_PAIRS = 32


#: (false-positive, false-negative) weights for choosing the banding; datasketch's `weights` argument.
LSH_WEIGHTS = (0.1, 0.9)


def optimal_bands(threshold: float, num_perm: int, fp_weight: float = LSH_WEIGHTS[0],
                  fn_weight: float = LSH_WEIGHTS[1]) -> tuple[int, int]:
    """(bands, rows) with bands x rows <= num_perm that minimise the weighted FP + FN probability mass."""
    xs = np.linspace(0.0, 1.0, 1001)

    def area(b: int, r: int, lo: float, hi: float, positive: bool) -> float:
        x = xs[(xs >= lo) & (xs <= hi)]
        p = 1.0 - (1.0 - x**r) ** b
        return float(np.trapezoid(p if not positive else 1.0 - p, x))

    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * area(b, r, 0.0, threshold, False) + fn_weight * area(b, r, threshold, 1.0, True)
            if err < best_err:
                best, best_err = (b, r), err
    return best


@dataclass
class Shingles:
    """Per-question sets of 64-bit shingle hashes in one flat array: question q owns values[starts[q]:starts[q+1]]."""

    values: np.ndarray  # uint64
    starts: np.ndarray  # int64, len n + 1

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)


def _mix64(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64), in place on a copy."""
    x = x.copy()
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def shingle(texts: list[str] | pd.Series, size: int = 2, chunk: int = 50_000) -> Shingles:
    """Distinct k-word shingles of each text, as 64-bit hashes. A text shorter than k words is one shingle.

    Texts are processed `chunk` at a time, so Python's word strings exist for one chunk only (at a million
    questions, all of them at once would take about 1 GB). Word hashes depend on the word alone
    (pandas' SipHash with a fixed key), so chunks agree.
    """
    texts = list(texts)
    values_parts, count_parts = [], []
    for lo in range(0, len(texts), chunk):
        values, counts = _shingle_chunk(texts[lo:lo + chunk], size)
        values_parts.append(values)
        count_parts.append(counts)
    counts = np.concatenate(count_parts) if count_parts else np.empty(0, np.int64)
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    values = np.concatenate(values_parts) if values_parts else np.empty(0, np.uint64)
    return Shingles(values, starts)


def _shingle_chunk(texts: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct shingle hashes of all texts, in text order; number per text)."""
    words_per_text = [normalize_question(t).split() for t in texts]
    lengths = np.fromiter((len(w) for w in words_per_text), dtype=np.int64, count=len(words_per_text))
    flat = np.empty(int(lengths.sum()), dtype=object)
    flat[:] = [w for words in words_per_text for w in words]
    del words_per_text
    hashes = pd.util.hash_array(flat, categorize=True) if len(flat) else np.empty(0, np.uint64)
    del flat
    word_starts = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=word_starts[1:])
    owner = np.repeat(np.arange(len(lengths)), lengths)
    ends = word_starts[1:][owner]  # end (exclusive) of each word's text
    positions = np.arange(len(hashes))
    combined = hashes.copy()
    with np.errstate(over="ignore"):
        for t in range(1, size):
            nxt = np.zeros_like(hashes)
            ok = positions + t < ends
            nxt[ok] = hashes[positions[ok] + t]
            combined = _mix64(combined * _MIX + nxt)
    first_of_text = positions == word_starts[:-1][owner]
    valid = (positions + size - 1 < ends) | (first_of_text & (lengths[owner] < size))
    values, owner = combined[valid], owner[valid]
    # Distinct values per text: sort within each text (texts are already in order) and drop repeats.
    order = np.lexsort((values, owner))
    values, owner = values[order], owner[order]
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = (values[1:] != values[:-1]) | (owner[1:] != owner[:-1])
    return values[keep], np.bincount(owner[keep], minlength=len(lengths))


class MinHasher:
    """`num_perm` multiply-shift hash functions (seeded), applied to shingle hashes in blocks."""

    def __init__(self, num_perm: int = 128, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd
        self.b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)

    def signatures(self, shingles: Shingles, lo: int, hi: int) -> np.ndarray:
        """(num_perm, hi - lo) uint32 MinHash signatures of texts lo..hi-1, one column per text.

        The permutation axis comes first so that every ufunc and the per-text `minimum.reduceat` run
        over contiguous memory (about 10x faster than the text-major layout).
        """
        start, stop = shingles.starts[lo], shingles.starts[hi]
        values = shingles.values[start:stop]
        out = np.full((self.num_perm, hi - lo), np.iinfo(np.uint32).max, dtype=np.uint32)
        if len(values) == 0:
            return out
        hashed = np.empty((self.num_perm, len(values)), dtype=np.uint64)
        np.multiply(self.a[:, None], values[None, :], out=hashed)  # wraps mod 2^64: multiply-shift hashing
        np.add(hashed, self.b[:, None], out=hashed)
        np.right_shift(hashed, np.uint64(32), out=hashed)
        local_starts = shingles.starts[lo:hi] - start
        nonempty = shingles.sizes[lo:hi] > 0
        out[:, nonempty] = np.minimum.reduceat(hashed, local_starts[nonempty], axis=1)
        return out


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(bands, n) uint64: each band's `rows` signature values folded into one key (band index mixed in)."""
    n = signatures.shape[1]
    keys = np.empty((bands, n), dtype=np.uint64)
    for b in range(bands):
        acc = np.full(n, ((b + 1) * int(_MIX)) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64)
        for r in range(b * rows, (b + 1) * rows):
            acc = _mix64(acc ^ signatures[r].astype(np.uint64))
        keys[b] = acc
    return keys


def pairs_sharing_a_key(keys: np.ndarray) -> np.ndarray:
    """(m, 2) int64 pairs (i < j) of rows whose key is equal; all pairs in small buckets, star-wise in big ones."""
    n = len(keys)
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    boundary = np.ones(n + 1, dtype=bool)
    boundary[1:-1] = sorted_keys[1:] != sorted_keys[:-1]
    run_starts = np.flatnonzero(boundary[:-1])
    run_sizes = np.diff(np.append(run_starts, n))
    multi = run_sizes >= 2
    run_starts, run_sizes = run_starts[multi], run_sizes[multi]
    if len(run_starts) == 0:
        return np.empty((0, 2), dtype=np.int64)
    small = run_sizes <= MAX_BUCKET_ALL_PAIRS
    parts = []
    # All pairs in small buckets: member at offset k pairs with offsets k+1..size-1.
    s_starts, s_sizes = run_starts[small], run_sizes[small]
    if len(s_starts):
        member_pos = np.repeat(s_starts, s_sizes) + _ranges(s_sizes)
        member_end = np.repeat(s_starts + s_sizes, s_sizes)
        partners = member_end - member_pos - 1
        left = np.repeat(member_pos, partners)
        right = left + 1 + _ranges(partners)
        parts.append(np.stack([order[left], order[right]], axis=1))
    b_starts, b_sizes = run_starts[~small], run_sizes[~small]
    if len(b_starts):
        first = np.repeat(b_starts, b_sizes - 1)
        others = first + 1 + _ranges(b_sizes - 1)
        parts.append(np.stack([order[first], order[others]], axis=1))
    pairs = np.concatenate(parts)
    return np.sort(pairs, axis=1)


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """concatenate(arange(s) for s in sizes), vectorised."""
    total = int(sizes.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    return np.arange(total, dtype=np.int64) - starts


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for a 1-D integer array, sorting it in place: 16x faster than np.unique on 8.5 M int64 pair
    codes here (0.6 vs 9.7 s; numpy 2.x's np.unique took a much slower path on them)."""
    if len(values) == 0:
        return values
    values.sort()
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


#: Candidates whose estimated Jaccard is this far below the threshold skip exact verification. The
#: estimate from 128 one-byte MinHash values has a standard deviation of about 0.04 near 0.7 (plus a
#: 1/256 chance per value of a spurious match), so 0.2 is five standard deviations: a pair at the
#: threshold is practically never dropped, while the many weak candidates of a large set are.
PREFILTER_MARGIN = 0.2


def estimated_jaccard(sketch: np.ndarray, pairs: np.ndarray, block: int = 100_000) -> np.ndarray:
    """Share of equal one-byte MinHash values of each pair: a cheap estimate of their Jaccard similarity."""
    out = np.empty(len(pairs), dtype=np.float32)
    for lo in range(0, len(pairs), block):
        chunk = pairs[lo:lo + block]
        out[lo:lo + block] = (sketch[chunk[:, 0]] == sketch[chunk[:, 1]]).mean(axis=1)
    return out


def exact_jaccard(shingles: Shingles, pairs: np.ndarray, block: int = 200_000) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair (float32), vectorised in blocks of pairs.

    Both sets of a pair are laid out side by side under the pair's local number in the high 32 bits and
    the shingle's low 32 bits below; after one sort, equal neighbours are shared shingles. (Two different
    shingles of one pair agree on their low 32 bits with probability ~ size^2 / 2^32, negligible.)
    """
    out = np.empty(len(pairs), dtype=np.float32)
    sizes = shingles.sizes
    low = shingles.values & np.uint64(0xFFFFFFFF)
    for lo in range(0, len(pairs), block):
        chunk = pairs[lo:lo + block]
        a, b = chunk[:, 0], chunk[:, 1]
        la, lb = sizes[a], sizes[b]
        local = np.arange(len(chunk), dtype=np.uint64)
        keys = []
        for side, lens in ((a, la), (b, lb)):
            idx = np.repeat(shingles.starts[side], lens) + _ranges(lens)
            keys.append((np.repeat(local, lens) << np.uint64(32)) | low[idx])
        merged = np.sort(np.concatenate(keys))
        shared = merged[1:][merged[1:] == merged[:-1]] >> np.uint64(32)
        inter = np.bincount(shared.astype(np.int64), minlength=len(chunk))
        union = la + lb - inter
        out[lo:lo + block] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return out


@dataclass
class LexicalResult:
    pairs: np.ndarray  # (m, 2) int64, i < j, verified
    similarity: np.ndarray  # (m,) float32 exact Jaccard
    candidates: int  # candidate pairs before verification
    bands: int
    rows: int
    seconds: dict[str, float]  # per phase: shingles, minhash_and_bands, candidates, verification


def lexical_near_duplicates(
    texts: list[str] | pd.Series,
    threshold: float = 0.7,
    num_perm: int = 128,
    shingle_size: int = 2,
    seed: int = 1,
    block: int = 5_000,
) -> LexicalResult:
    """Pairs of texts whose k-word shingle sets have Jaccard similarity >= threshold (LSH: a few may be missed)."""
    clock = _Clock()
    shingles = shingle(texts, shingle_size)
    clock("shingles")
    n = len(shingles.starts) - 1
    bands, rows = optimal_bands(threshold, num_perm)
    hasher = MinHasher(num_perm, seed)
    keys = np.empty((bands, n), dtype=np.uint64)
    sketch = np.empty((n, num_perm), dtype=np.uint8)  # low byte of each MinHash value: the prefilter
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        signatures = hasher.signatures(shingles, lo, hi)
        keys[:, lo:hi] = band_keys(signatures, bands, rows)
        sketch[lo:hi] = signatures.T.astype(np.uint8)
    clock("minhash_and_bands")
    codes = []  # a pair (i, j) as the one int64 i * n + j: half the memory of two columns
    for b in range(bands):
        pairs = pairs_sharing_a_key(keys[b])  # each pair once within a band
        codes.append(pairs[:, 0] * np.int64(n) + pairs[:, 1])
    del keys
    codes = sorted_unique(np.concatenate(codes))  # pairs found in several bands
    candidates = np.stack([codes // n, codes % n], axis=1)
    del codes
    empty = shingles.sizes == 0  # texts without words share the all-max signature; they are nobody's duplicate
    candidates = candidates[~(empty[candidates[:, 0]] | empty[candidates[:, 1]])]
    clock("candidates")
    n_candidates = len(candidates)
    candidates = candidates[estimated_jaccard(sketch, candidates) >= threshold - PREFILTER_MARGIN]
    del sketch
    clock("prefilter")
    similarity = exact_jaccard(shingles, candidates)
    ok = similarity >= threshold
    clock("verification")
    return LexicalResult(candidates[ok], similarity[ok], n_candidates, bands, rows, clock.seconds)


class _Clock:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 3)
        self._last = now
