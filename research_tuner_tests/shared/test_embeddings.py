"""The embedding model is a setting: any sentence-transformers folder works, with its vector size read from the
model, and unknown embedded names fail with what is known."""

from __future__ import annotations

import numpy as np
import pytest

from research_tuner.lib.shared.similarity import embeddings
from research_tuner.lib.shared.similarity.pairs import duplicate_pairs
from research_tuner.settings import DedupSettings


@pytest.fixture(scope="module")
def tiny_embedder(tmp_path_factory) -> str:
    """A 48-wide sentence-transformers model (a random 2-layer BERT and mean pooling), saved to a folder."""
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-embedder")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz", "sleep", "memory", "how"]
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder / "bert")
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64)).save_pretrained(folder / "bert")
    word = models.Transformer(str(folder / "bert"))
    width = (getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension)()
    SentenceTransformer(modules=[word, models.Pooling(width)]).save(str(folder / "st"))
    return str(folder / "st")


def test_another_model_is_a_setting_and_its_size_comes_from_the_model(tiny_embedder):
    vectors = embeddings.embed(["how does sleep affect memory", "abc"], tiny_embedder, precision="fp32")
    assert vectors.shape == (2, 48) and embeddings.embedding_size(tiny_embedder) == 48
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cfg = DedupSettings(embedding_model=tiny_embedder, embedding_precision="fp32")
    pairs = duplicate_pairs(["How does sleep affect memory?", "How does sleep affect memory!", "abc def?"], cfg)
    assert (0, 1) in set(zip(pairs.a.tolist(), pairs.b.tolist()))  # the exact pass, whatever the embedder


def test_the_default_is_the_embedded_minilm():
    assert DedupSettings().embedding_model == embeddings.DEFAULT_EMBEDDING_MODEL == "embedded:all-MiniLM-L6-v2"
    assert embeddings.embedding_size() == 384


def test_an_unknown_embedded_model_names_the_known_ones():
    with pytest.raises(embeddings.EmbeddingModelMissing, match="known: embedded:all-MiniLM-L6-v2"):
        embeddings.load_embedder("embedded:e5-small")
