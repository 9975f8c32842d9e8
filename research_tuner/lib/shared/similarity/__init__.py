"""How alike two texts are, at scale: exact (normalised text), lexical (MinHash/LSH over word shingles) and
semantic (sentence embeddings), combined into duplicate pairs and their clusters. The questions stage clusters
its questions with it; the approaches stage uses the same pairs to keep near-duplicates on one side of the split."""
