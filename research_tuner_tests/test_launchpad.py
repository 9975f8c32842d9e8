"""The launchpad's settings: every key of every section is a typed config field with its description and both
profiles' defaults; a key set there reaches the run's profile, a key left null keeps the profile's value, `set`
goes last (and can say null), a typo is refused by Dagster's config check and a bad value by the settings' own
check; a repair command made from an old or a scaffolded run config is the same settings in today's form."""

import json
import shlex
import typing

import dagster as dg
import pytest
from pydantic import BaseModel

from research_tuner.lake_records import current_settings_config, repair_command
from research_tuner.resources import PipelineSettings
from research_tuner.settings import Profile, SettingsError, load_profile, parse_assignments
from research_tuner.settings.profile import format_assignments


def settings_keys(model: type[BaseModel] = Profile, prefix: str = "") -> list[str]:
    keys = []
    for name, info in model.model_fields.items():
        if model is Profile and name == "name":
            continue
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            keys += settings_keys(info.annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def schema_field(dotted: str):
    """The Dagster config field of a settings key, as the launchpad's schema has it."""
    config_type = PipelineSettings.to_config_schema().as_field().config_type
    *parents, leaf = dotted.split(".")
    for part in parents:
        config_type = config_type.fields[part].config_type
    return config_type.fields[leaf]


def test_every_settings_key_is_a_described_field_with_its_defaults():
    keys = settings_keys()
    assert len(keys) > 100 and "training.lora_r" in keys and "evaluation.judge.model" in keys
    for key in keys:
        field = schema_field(key)
        assert not field.is_required, key
        assert field.description and ("default " in field.description or "demo " in field.description), key
    assert "demo 1.0, paper 2.0" in schema_field("training.epochs").description  # the profiles differ
    assert "(the paper: 16)" in schema_field("training.lora_r").description
    assert "default 16" in schema_field("training.lora_r").description


def test_a_choice_is_offered_as_its_values():
    precision = schema_field("training.precision").config_type.inner_type  # Noneable(Enum)
    assert [v.config_value for v in precision.enum_values] == list(
        typing.get_args(typing.get_type_hints(type(load_profile("demo").training))["precision"]))


def test_keys_set_in_the_launchpad_reach_the_profile_and_null_keeps_it():
    settings = PipelineSettings(profile="paper", training={"epochs": 1, "processes": "auto", "precision": "fp32"},
                                evaluation={"judge": {"enabled": True}})
    profile = settings.resolve()
    assert (profile.training.epochs, profile.training.processes, profile.training.precision) == (1, "auto", "fp32")
    assert profile.evaluation.judge.enabled is True
    paper = load_profile("paper")
    assert profile.training.lora_r == paper.training.lora_r and profile.teacher == paper.teacher
    assert PipelineSettings(profile="paper").resolve() == paper


def test_set_goes_last_and_can_say_null():
    settings = PipelineSettings(profile="paper", teacher={"budget_usd": 5.0, "max_retries": 1},
                                set=["teacher.max_retries=3", "teacher.budget_usd=null"])
    teacher = settings.resolve().teacher
    assert (teacher.max_retries, teacher.budget_usd) == (3, None)


def test_a_bad_value_fails_naming_the_key_and_a_typo_fails_dagsters_config_check():
    with pytest.raises(SettingsError, match=r"training\.epochs"):
        PipelineSettings(profile="demo", training={"epochs": -1}).resolve()

    from research_tuner.definitions import defs

    job = defs.resolve_job_def("training_job")
    good = {"resources": {"settings": {"config": {"training": {"epochs": 1}}}}}
    typo = {"resources": {"settings": {"config": {"training": {"epoch": 1}}}}}
    assert dg.validate_run_config(job, good)
    with pytest.raises(dg.DagsterInvalidConfigError, match="epoch"):
        dg.validate_run_config(job, typo)


def test_a_run_launched_with_typed_keys_uses_them():
    @dg.asset
    def seen(settings: PipelineSettings) -> dict:
        profile = settings.resolve()
        return {"epochs": profile.training.epochs, "model": profile.teacher.model}

    config = {"resources": {"settings": {"config": {"profile": "demo", "training": {"epochs": 3},
                                                    "set": ["teacher.model=embedded:other"]}}}}
    result = dg.materialize([seen], resources={"settings": PipelineSettings()}, run_config=config)
    assert result.output_for_node("seen") == {"epochs": 3.0, "model": "embedded:other"}


def test_assignments_round_trip():
    nested = {"training": {"epochs": 1, "target_modules": ["q_proj", "v_proj"], "lr_scheduler": "cosine"},
              "teacher": {"budget_usd": None, "base_url": "http://127.0.0.1:8000/v1"}}
    assert parse_assignments(format_assignments(nested)) == nested


def test_a_repair_command_carries_the_settings_in_todays_form():
    scaffolded = {"profile": "paper", "config_file": "", "training": {"epochs": 1, "lora_r": None},
                  "teacher": {"model": None}, "evaluation": {"judge": {"model": None}}, "set": []}
    assert current_settings_config(scaffolded) == {"profile": "paper", "config_file": "",
                                                   "training": {"epochs": 1}, "set": []}
    legacy = {"profile": "paper", "overrides": {"training": {"epochs": 1}, "teacher": {"model": "gpt-4.1"}}}
    today = current_settings_config(legacy)
    assert today == {"profile": "paper", "set": ["training.epochs=1", 'teacher.model="gpt-4.1"']}
    assert PipelineSettings(**today).resolve() == load_profile("paper", overrides=legacy["overrides"])
    words = shlex.split(repair_command("/lake", "approaches", "arts", legacy))
    config = json.loads(words[words.index("--config-json") + 1])
    assert config["resources"]["settings"]["config"] == today
