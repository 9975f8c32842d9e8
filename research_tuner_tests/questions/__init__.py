"""Tests of research_tuner/lib/questions and its assets."""
