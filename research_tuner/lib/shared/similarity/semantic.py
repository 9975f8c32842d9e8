"""Semantic near-duplicates: a sub-quadratic neighbour search over sentence embeddings (embeddings.py), and
the rule that decides which close pairs are paraphrases.

The search blocks the unit-length embeddings with spherical k-means (about sqrt(n) cells): every
question is stored in its nearest cell and looked up in its `probes` nearest cells, and only those
blocks are compared by exact cosine (a matrix product). Cost grows like n^1.5 rather than n^2, and
every pair reported has an exact cosine at or above the threshold; a pair whose two questions share
no probed cell is missed (the benchmark measures that recall against brute force).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from research_tuner.lib.shared.ids import normalize_question

#: Below this many questions the exact all-pairs product is cheaper than building cells.
BRUTE_FORCE_BELOW = 4096


@dataclass
class SemanticResult:
    pairs: np.ndarray  # (m, 2) int64, i < j
    similarity: np.ndarray  # (m,) float32 cosine
    compared: int  # pairs whose cosine was computed
    cells: int


def _pairs_above(sims: np.ndarray, rows: np.ndarray, cols: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    r, c = np.nonzero(sims >= threshold)
    a, b = rows[r], cols[c]
    keep = a != b
    a, b, s = a[keep], b[keep], sims[r[keep], c[keep]]
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), s


def _brute_force(emb: np.ndarray, threshold: float, block: int = 2048) -> SemanticResult:
    n = len(emb)
    pairs, sims = [], []
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        s = emb[lo:hi] @ emb[lo:].T
        s[np.tril_indices(hi - lo, m=n - lo)] = -1.0  # each pair once, no self pairs
        p, v = _pairs_above(s, np.arange(lo, hi), np.arange(lo, n), threshold)
        pairs.append(p)
        sims.append(v)
    return SemanticResult(np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64),
                          np.concatenate(sims) if sims else np.empty(0, np.float32), n * (n - 1) // 2, 1)


def spherical_kmeans(emb: np.ndarray, cells: int, iterations: int = 8, sample: int = 64, seed: int = 0) -> np.ndarray:
    """(cells, d) unit centroids trained on up to `sample` x cells points."""
    rng = np.random.default_rng(seed)
    train = emb[rng.choice(len(emb), size=min(len(emb), sample * cells), replace=False)]
    centroids = train[rng.choice(len(train), size=cells, replace=False)].copy()
    for _ in range(iterations):
        nearest = np.argmax(train @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, train)
        counts = np.bincount(nearest, minlength=cells)
        empty = counts == 0
        sums[empty] = train[rng.choice(len(train), size=int(empty.sum()), replace=False)]
        centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(1e-12)
    return centroids.astype(np.float32)


def semantic_near_duplicates(emb: np.ndarray, threshold: float = 0.9, probes: int = 3, seed: int = 0,
                             block: int = 8192) -> SemanticResult:
    """Pairs with cosine >= threshold among unit vectors `emb`, exact below BRUTE_FORCE_BELOW, else blocked."""
    n = len(emb)
    if n < BRUTE_FORCE_BELOW:
        return _brute_force(emb, threshold)
    cells = int(np.sqrt(n))
    probes = min(probes, cells)
    centroids = spherical_kmeans(emb, cells, seed=seed)
    nearest = np.empty((n, probes), dtype=np.int64)
    for lo in range(0, n, block):
        scores = emb[lo:lo + block] @ centroids.T
        top = np.argpartition(-scores, probes - 1, axis=1)[:, :probes]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        nearest[lo:lo + block] = np.take_along_axis(top, order, axis=1)
    home = nearest[:, 0]
    members_order = np.argsort(home, kind="stable")
    member_bounds = np.searchsorted(home[members_order], np.arange(cells + 1))
    probe_points = np.repeat(np.arange(n), probes)
    probe_cells = nearest.ravel()
    probe_order = np.argsort(probe_cells, kind="stable")
    probe_points = probe_points[probe_order]
    probe_bounds = np.searchsorted(probe_cells[probe_order], np.arange(cells + 1))
    pairs, sims, compared = [], [], 0
    for c in range(cells):
        members = members_order[member_bounds[c]:member_bounds[c + 1]]
        queries = probe_points[probe_bounds[c]:probe_bounds[c + 1]]
        if len(members) == 0 or len(queries) == 0:
            continue
        s = emb[queries] @ emb[members].T
        compared += s.size
        p, v = _pairs_above(s, queries, members, threshold)
        pairs.append(p)
        sims.append(v)
    if not pairs:
        return SemanticResult(np.empty((0, 2), np.int64), np.empty(0, np.float32), compared, cells)
    pairs_all, sims_all = np.concatenate(pairs), np.concatenate(sims)
    codes, first = np.unique(pairs_all[:, 0] * np.int64(n) + pairs_all[:, 1], return_index=True)
    return SemanticResult(np.stack([codes // n, codes % n], axis=1), sims_all[first], compared, cells)


#: Words that carry no topic: question words, articles, prepositions, auxiliaries, vague verbs of relation.
STOPWORDS = frozenset("""
a an the of in on at to for from by with and or not no is are was were be been being do does did done has have
had how what which why when where who whom whose whether than as that this these those their there its it into
onto over under between among about across within during after before can could will would should may might
must more most less least much many compared than such per via each other any some all both
""".split())


def content_words(text: str) -> frozenset[str]:
    """The normalised words of `text` minus STOPWORDS, with a plural 's' dropped (so 'incomes' meets 'income')."""
    words = (w for w in normalize_question(text).split() if w not in STOPWORDS)
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words)


def content_jaccard(texts: list[str], pairs: np.ndarray) -> np.ndarray:
    """Jaccard similarity of the content-word sets of each pair (rows of `pairs` index `texts`), vectorised.

    Texts become rows of a sparse 0/1 word matrix, so the cost is linear in the words of the pairs' texts.
    """
    from scipy.sparse import csr_matrix

    if len(pairs) == 0:
        return np.empty(0, np.float32)
    seen = np.zeros(int(pairs.max()) + 1, dtype=bool)  # the texts in any pair, in order: 30x np.unique here
    seen[pairs.ravel()] = True
    used = np.flatnonzero(seen)
    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for i in used:
        indices.extend(vocab.setdefault(w, len(vocab)) for w in content_words(texts[i]))
        indptr.append(len(indices))
    matrix = csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(used), max(1, len(vocab))))
    row = np.searchsorted(used, pairs)
    sizes = np.diff(matrix.indptr).astype(np.float32)
    inter = np.concatenate([  # in chunks, so millions of pairs never build one huge sparse product
        np.asarray(matrix[r[:, 0]].multiply(matrix[r[:, 1]]).sum(axis=1)).ravel()
        for r in np.array_split(row, max(1, len(row) // 500_000))])
    union = sizes[row[:, 0]] + sizes[row[:, 1]] - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0).astype(np.float32)


def required_cosine(overlap: np.ndarray, threshold: float, slope: float, cap: float) -> np.ndarray:
    """The cosine a pair must reach to count as a paraphrase, given its content-word Jaccard `overlap`.

    all-MiniLM-L6-v2 scores two questions that share most words but ask about another outcome (a
    same-topic question) about as high as a reworded question that shares few words, so shared words
    raise the bar: what differs between two mostly identical questions is what the study is about.
    """
    return np.minimum(threshold + slope * overlap, cap)
