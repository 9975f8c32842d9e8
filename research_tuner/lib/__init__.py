"""Plain-Python library layer, one package per stage, callable and testable without Dagster.

Imports go downward only: `shared` and `teacher` import no stage package; a stage package imports `shared`,
`teacher` and `research_tuner.settings`, never another stage (`evaluation` may read `training`'s adapter loader
through `shared.inference`). Nothing here imports Dagster; research_tuner_tests/test_layout.py enforces both.
"""
