"""Tests of research_tuner/lib/training and its assets."""
