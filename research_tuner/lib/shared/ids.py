"""Ids and seeds: the normalised form of a question, its id, the seeds of teacher requests, and seeded ranks.

Every one is a hash of its inputs, so the same data gets the same ids, seeds and order on every machine and run.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WORD = re.compile(r"[^\W_]+")


def stable_seed(*parts: object) -> int:
    """A 31-bit seed from the parts (joined with '|'): the same parts, the same seed."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def normalize_question(text: str) -> str:
    """Lower-case letters and digits separated by single spaces: the form exact duplicates share."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(_WORD.findall(text))


def question_id(field: str, subdomain: str, question: str) -> str:
    """16 hex digits of the field, subdomain and normalised question: a question's id in every asset."""
    return hashlib.sha256(f"{field}|{subdomain}|{normalize_question(question)}".encode()).hexdigest()[:16]


def rank_key(seed: int, salt: str, question_id: str) -> str:
    """A seeded sort key of a question (the split and the evaluation sample rank questions by it)."""
    return hashlib.sha256(f"{seed}|{salt}|{question_id}".encode()).hexdigest()
