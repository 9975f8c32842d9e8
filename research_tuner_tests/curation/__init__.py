"""Tests of research_tuner/lib/curation: dedup, question gates, borderline verdicts, the split."""
