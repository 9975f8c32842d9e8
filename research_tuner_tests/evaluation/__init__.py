"""Tests of research_tuner/lib/evaluation and its assets."""
