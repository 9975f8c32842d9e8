"""What is kept: near-duplicate clusters of the questions (exact, lexical MinHash/LSH, semantic embeddings, an
optional teacher verdict on borderline pairs) across all fields and rounds, the question gates, and the stable,
leak-free train/validation split. Imports `shared`, `teacher` and `generation` (for the row schemas it reads)."""
