"""A teacher of the paper profile pointed at the loopback OpenAI-compatible server (openai_server.py)."""

from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.settings import load_profile


def loopback_teacher(server, tmp_path, monkeypatch, **teacher_overrides):
    """(teacher, its settings): the openai backend against `server`, a throwaway key, a cache under `tmp_path`
    and backoffs of milliseconds (so retry tests take no time)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    cfg = load_profile("paper", overrides={"teacher": {"base_url": server.base_url, **teacher_overrides}}).teacher
    teacher = build_teacher(cfg, tmp_path / "cache.sqlite")
    teacher.inner.backoff_base_s = 0.01
    return teacher, cfg
