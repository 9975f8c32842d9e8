"""Tests of research_tuner/lib/approaches and its assets."""
