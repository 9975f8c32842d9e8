"""The questions stage: the teacher's research questions per subdomain, and their near-duplicate clusters
(exact, lexical MinHash/LSH, semantic embeddings) across all fields."""
