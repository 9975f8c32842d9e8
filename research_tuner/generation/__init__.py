"""Generation stage: the taxonomy's subdomains, the teacher's questions and its research approaches."""
