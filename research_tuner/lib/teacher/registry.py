"""Teacher backends by name (`teacher.backend`): the name -> module table and nothing else.

A backend is a module with `build(settings: TeacherSettings, cache: ResponseCache) -> Teacher` (see base.py for
what a Teacher does); factory.py builds the one a setting names. Adding one is a module and a line in `BACKENDS`;
the settings accept every name here. This module imports nothing, so the settings can validate a name against it
without the library's modules (which take the settings as their config) importing the settings back.
"""

#: `teacher.backend` -> the module whose `build` makes that teacher.
BACKENDS: dict[str, str] = {
    "local": "research_tuner.lib.teacher.local",  # a Hugging Face model in this process
    "openai": "research_tuner.lib.teacher.openai_api",  # any OpenAI-compatible server (online or Batch API)
}
