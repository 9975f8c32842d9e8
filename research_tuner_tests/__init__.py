"""The test suite; its folders mirror research_tuner/ (a stage's tests beside its library and assets)."""
