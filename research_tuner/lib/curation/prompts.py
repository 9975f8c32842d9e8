"""The curation stage's prompt: the teacher's verdict on a borderline pair of questions."""

#: Borderline near-duplicates (`dedup.teacher_borderline`): a pair just below the semantic bar, asked yes/no.
SAME_STUDY_SYSTEM = "You compare research questions. Answer with one word: yes or no."
SAME_STUDY_USER = (
    "Question A: {a}\nQuestion B: {b}\n\n"
    "Would one study answer both questions, so that they are the same research question in other words? "
    "Answer yes or no."
)
