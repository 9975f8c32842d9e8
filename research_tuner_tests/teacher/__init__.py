"""Tests of research_tuner/lib/teacher and its assets."""
