"""The release stage (asset group `release`): model_release - the cards, the dataset export, the evaluation in
MLflow, the optional Hub upload. Logic in research_tuner/lib/release/ and the training card."""
