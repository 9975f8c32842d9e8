"""The approaches stage (asset group `approaches`): the teacher's approach per kept question, and the train /
validation split. Logic in research_tuner/lib/approaches/."""
