"""The approaches stage: the teacher's research approach (the 7 sections) per kept question, and the stable,
leak-free train/validation split of the question/approach pairs."""
