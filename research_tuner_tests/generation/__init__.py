"""Tests of research_tuner/lib/generation: the ways of asking the teacher, and the approach gates."""
