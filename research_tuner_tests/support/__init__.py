"""Test helpers: a loopback OpenAI-compatible server, a throwaway PostgreSQL, `dagster dev` for the UI tests, the secret scan, the teacher worker process, the tiny training settings."""
