"""research_tuner: the pipeline of "Fine-Tuning LLMs For Research" as Dagster assets."""
