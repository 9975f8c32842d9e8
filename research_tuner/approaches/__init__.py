"""The approaches stage (asset group `approaches`): the teacher's approach per kept question, and the train /
validation split. Logic in research_tuner/lib/generation/ (the approach) and lib/curation/ (the split)."""
