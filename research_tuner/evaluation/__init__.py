"""Evaluation stage: base vs fine-tuned answers on validation questions, scores, and the paper's figures."""
