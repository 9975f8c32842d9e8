"""Ways of asking for questions: a teacher's answer cleaned into one well-formed question, or a JSON list read."""

from research_tuner.lib.generation.question_strategies import clean_question, parse_question_list


def test_clean_question_keeps_one_question():
    assert clean_question("1. how does sleep affect memory in adults? And more text") == (
        "How does sleep affect memory in adults?")
    assert clean_question("This is not a question.") is None
    assert clean_question("Why?") is None  # too short to design a study around


def test_a_question_list_is_read_from_json_or_line_by_line():
    assert parse_question_list('Sure! {"questions": ["how does light affect plant growth rates?", "No."]}') == [
        "How does light affect plant growth rates?"]
    assert parse_question_list("1. Why do some rivers meander more than others?\n2. Rivers are long.") == [
        "Why do some rivers meander more than others?"]
