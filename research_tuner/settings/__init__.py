"""Pipeline settings: the `demo` and `paper` profiles, user override files, and their validation.

Every knob that differs between the laptop run and the paper-sized run lives here. A profile is a YAML
file in `research_tuner/profiles/`; a user's own YAML file and dotted `key=value` overrides are deep-merged
over it, and the result is validated (unknown keys and bad values are errors that name the key) before
anything runs.

The package's modules hold the sections (teacher.py, data.py, training.py, evaluation.py, release.py), the
profile that joins them (profile.py) and a run's fields and data lake (selection.py); the names below are its
public face.
"""

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.settings.data import DedupSettings, GenerationSettings, SplitSettings
from research_tuner.settings.evaluation import EvaluationSettings, JudgeSettings
from research_tuner.settings.release import HubSettings, ReleaseSettings, TrackingSettings
from research_tuner.settings.selection import check_lake, select_fields
from research_tuner.settings.gates import ApproachGateSettings, GateSettings, QuestionGateSettings
from research_tuner.settings.profile import PROFILE_NAMES, Profile, load_profile, parse_assignments
from research_tuner.settings.teacher import TeacherSettings
from research_tuner.settings.training import EMBEDDED_MODEL, LLAMA_PROJECTIONS, TrainingSettings, accumulation_problem

__all__ = [
    "EMBEDDED_MODEL", "LLAMA_PROJECTIONS", "PROFILE_NAMES", "ApproachGateSettings", "DedupSettings",
    "EvaluationSettings", "GateSettings", "GenerationSettings", "HubSettings", "JudgeSettings", "Profile",
    "QuestionGateSettings", "ReleaseSettings", "SettingsError", "SplitSettings", "TeacherSettings",
    "TrackingSettings", "TrainingSettings", "accumulation_problem", "check_lake", "load_profile",
    "parse_assignments", "select_fields",
]
