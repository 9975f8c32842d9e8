"""The evaluation stage (asset group `evaluation`): base vs fine-tuned answers, the optional judge's grades, their
scores, and the report with the paper's figures. Logic in research_tuner/lib/evaluation/."""
