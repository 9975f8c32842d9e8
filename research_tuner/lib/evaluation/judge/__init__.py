"""The optional LLM judge: a rubric (prompts.py), the structured answer it is asked for (schema.py), a parser
for servers that ignore the schema (parse.py), and the grading of every evaluation answer (grade.py)."""
