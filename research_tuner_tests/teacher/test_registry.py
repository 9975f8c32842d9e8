"""Teacher backends come from the registry: a new backend is a module with `build` and one line in BACKENDS,
and the settings accept exactly the registered names."""

from __future__ import annotations

import sys
import types

import pytest

from research_tuner.lib.teacher import factory, registry
from research_tuner.lib.teacher.base import TeacherRequest, TeacherResponse, Usage
from research_tuner.settings import SettingsError, load_profile


class EchoTeacher:
    """Answers every request with its last message, reversed: a backend nobody ships."""

    endpoint = "echo"

    def __init__(self, settings):
        self.model = settings.model

    def complete(self, requests, usage, progress=None, on_response=None):
        out = []
        for i, request in enumerate(requests):
            response = TeacherResponse(request.messages[-1]["content"][::-1], "stop", 1, 1)
            usage.record(response)
            if on_response:
                on_response(i, response)
            out.append(response)
        return out

    def close(self) -> None:
        pass


@pytest.fixture
def echo_backend(monkeypatch):
    module = types.ModuleType("echo_backend")
    module.build = lambda settings, cache: EchoTeacher(settings)
    monkeypatch.setitem(sys.modules, "echo_backend", module)
    monkeypatch.setitem(registry.BACKENDS, "echo", "echo_backend")


def test_a_registered_backend_is_accepted_built_and_cached(echo_backend, tmp_path):
    cfg = load_profile("demo", overrides={"teacher": {"backend": "echo", "model": "echo-1"}}).teacher
    teacher = factory.build_teacher(cfg, tmp_path / "cache.sqlite")
    request = TeacherRequest(({"role": "user", "content": "abc"},), 8, 0.0, 1.0, 0)
    first, again = Usage(), Usage()
    assert teacher.complete([request], first)[0].text == "cba" and first.requests_sent == 1
    assert teacher.complete([request], again)[0].cached and again.requests_sent == 0  # behind the cache
    teacher.close()


def test_an_unregistered_backend_is_refused_with_the_names_there_are():
    with pytest.raises(SettingsError, match=r"teacher.backend: .*unknown teacher backend 'echo'; choose one of local, openai"):
        load_profile("demo", overrides={"teacher": {"backend": "echo"}})


@pytest.mark.parametrize(("key", "what"), [("question_strategy", "question strategy"),
                                            ("approach_strategy", "approach strategy")])
def test_strategies_are_looked_up_in_their_registries(key, what):
    with pytest.raises(SettingsError, match=f"unknown {what} 'by_magic'"):
        load_profile("demo", overrides={"teacher": {key: "by_magic"}})
