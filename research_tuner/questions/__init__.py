"""The questions stage (asset group `questions`): the taxonomy's subdomains, the teacher's questions, and their
near-duplicate clusters across all fields. Logic in research_tuner/lib/generation/ (the questions) and lib/curation/ (dedup, gates)."""
