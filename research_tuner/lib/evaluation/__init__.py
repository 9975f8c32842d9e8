"""The evaluation stage: base and fine-tuned answers to validation questions, their metrics (a registry), the
optional LLM judge, the paired comparison and the paper's figures."""
