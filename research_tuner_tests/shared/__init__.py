"""Tests of research_tuner/lib/shared and its assets."""
