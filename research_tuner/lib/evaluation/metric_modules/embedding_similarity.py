"""Cosine similarity of each answer's sentence embedding to its reference's (all-MiniLM-L6-v2 by default, offline):
an evaluate module around research_tuner.lib.evaluation.embedding.embedding_similarity."""

import evaluate

from research_tuner.lib.evaluation.embedding import embedding_similarity
from research_tuner.lib.evaluation.metric_modules._base import info
from research_tuner.lib.shared.similarity.embeddings import DEFAULT_EMBEDDING_MODEL


class EmbeddingSimilarity(evaluate.Metric):
    def _info(self):
        return info("Cosine of the answer's and the reference's unit sentence embeddings (each text cut at the "
                    "model's maximum sequence length); compute(..., embedding_model=...) picks the model.")

    def _compute(self, predictions, references, embedding_model: str = DEFAULT_EMBEDDING_MODEL):
        return {"scores": embedding_similarity(predictions, references, embedding_model)}
