"""Code versions: a changed prompt or setting changes exactly the assets it shapes, and Dagster then
reports those assets (and what follows them) stale after a real materialization."""

import dataclasses

import dagster as dg
import pandas as pd
import pytest

from research_tuner import versions
from research_tuner.definitions import defs
from research_tuner.lib.generation import approach_prompts
from research_tuner.lib.evaluation import metrics
from research_tuner.lib.evaluation.judge import pairwise_prompts
from research_tuner.lib.evaluation.judge import prompts as judge_prompts
from research_tuner.lib.generation import question_prompts
from research_tuner.lib.curation import prompts as curation_prompts
from research_tuner.lib.shared import chat
from research_tuner.settings import load_profile

ALL = set(versions.LOGIC_VERSIONS)


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def test_every_asset_has_a_code_version_from_the_profile_loaded_at_import():
    graph = defs.resolve_asset_graph()
    profile = load_profile("demo")  # the tests run without RESEARCH_TUNER_PROFILE
    for key in graph.get_all_asset_keys():
        assert graph.get(key).code_version == versions.code_version(key.to_user_string(), profile)
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ALL


def test_a_prompt_change_touches_only_the_assets_that_send_it(monkeypatch):
    profile = load_profile("paper")
    before = dict(versions.code_versions(profile))
    monkeypatch.setattr(question_prompts, "QUESTION_LIST_USER", question_prompts.QUESTION_LIST_USER + " Be brief.")
    assert changed(before, versions.code_versions(profile)) == {"raw_questions"}
    monkeypatch.setattr(approach_prompts, "SECTION_INSTRUCTIONS",
                        {**approach_prompts.SECTION_INSTRUCTIONS, "Hypothesis": "State it."})
    assert changed(before, versions.code_versions(profile)) == {"raw_questions", "approaches"}
    monkeypatch.undo()
    monkeypatch.setattr(chat, "STUDENT_SYSTEM_PROMPT", "You advise on research.")
    assert changed(before, versions.code_versions(profile)) == {"lora_adapter", "eval_generations"}
    monkeypatch.undo()
    monkeypatch.setattr(judge_prompts, "RUBRIC", judge_prompts.RUBRIC + " Be harsh.")
    assert changed(before, versions.code_versions(profile)) == {"eval_judgements"}
    monkeypatch.undo()
    monkeypatch.setattr(pairwise_prompts, "PAIRWISE_INSTRUCTIONS", pairwise_prompts.PAIRWISE_INSTRUCTIONS + " Be fair.")
    assert changed(before, versions.code_versions(profile)) == {"eval_preferences"}


def test_a_new_or_changed_metric_makes_only_scoring_stale(monkeypatch):
    """Scoring is its own step: a metric added to the registry reruns eval_scores, never the models."""
    profile = load_profile("paper")
    before = dict(versions.code_versions(profile))
    bleu = metrics.Metric("bleu", "BLEU", "n-gram precision", "bleu")
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, bleu))
    assert changed(before, versions.code_versions(profile)) == {"eval_scores"}
    monkeypatch.setattr(metrics, "METRICS", (metrics.ROUGE_L, dataclasses.replace(metrics.METEOR, version=2),
                                             *metrics.METRICS[2:]))
    assert changed(before, versions.code_versions(profile)) == {"eval_scores"}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"training": {"lora_r": 8}}, {"lora_adapter"}),
        ({"training": {"precision": "bf16-mixed"}}, {"lora_adapter", "eval_generations"}),
        ({"teacher": {"model": "gpt-4.1"}}, {"raw_questions", "approaches", "eval_judgements", "eval_preferences"}),
        ({"teacher": {"max_tokens_approach": 900}}, {"approaches"}),
        ({"teacher": {"questions_per_request": 10}}, {"raw_questions"}),
        ({"generation": {"subdomains_per_field": 2}}, {"subdomains"}),
        ({"generation": {"questions_per_subdomain": 20}}, {"raw_questions"}),
        ({"split": {"validation_fraction": 0.2}}, {"dataset_split"}),
        ({"dedup": {"lexical_threshold": 0.8}}, {"question_clusters", "dataset_split"}),
        ({"evaluation": {"max_new_tokens": 100}}, {"eval_generations"}),
        ({"evaluation": {"judge": {"enabled": True}}}, {"eval_judgements"}),
        ({"evaluation": {"judge": {"pairwise": False}}}, {"eval_preferences"}),
        ({"evaluation": {"judge": {"model": "qwen2.5:7b"}}}, {"eval_judgements", "eval_preferences"}),
        # the judge's server, key, prices and budget say where and at what cost, not what it says
        ({"evaluation": {"judge": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "JUDGE_KEY",
                                   "price_input_per_mtok": 2.0, "budget_usd": 1.0}}}, set()),
        ({"dedup": {"embedding_model": "/models/mpnet"}}, {"question_clusters", "dataset_split", "eval_scores",
                                                           "approaches"}),
        ({"gates": {"questions": {"min_words": 4}}}, {"question_clusters"}),
        ({"gates": {"approaches": {"min_section_words": 3}}}, {"approaches"}),
        # how fast or where the work runs never makes data stale
        ({"teacher": {"max_concurrency": 2, "base_url": "http://127.0.0.1:9/v1", "max_retries": 9}}, set()),
        ({"teacher": {"requests_per_minute": 500, "budget_usd": 3.0, "mode": "batch"}}, set()),
        ({"training": {"save_steps": 7, "logging_steps": 1}}, set()),
        ({"training": {"processes": 4}}, set()),  # 4 GPUs share the same effective batch
        # where results are reported or pushed changes no file; the licence and the dataset's id change the cards
        ({"tracking": {"backend": "mlflow"}, "release": {"hub": {"push": True, "model_repo_id": "u/m"}}}, set()),
        ({"release": {"license": "mit", "hub": {"dataset_repo_id": "u/d"}}}, {"model_release"}),
    ],
)
def test_a_setting_change_touches_only_the_assets_that_read_it(override, expected):
    before = dict(versions.code_versions(load_profile("paper")))
    after = dict(versions.code_versions(load_profile("paper", overrides=override)))
    assert changed(before, after) == expected


def test_every_prompt_and_profile_section_shapes_some_asset():
    """A new prompt constant or profile section must be mapped in versions.py, or edits to it go unnoticed."""
    mapped = {(module.__name__, name) for sources in versions.PROMPTS.values() for module, names in sources
              for name in names}
    constants = {(module.__name__, n) for module in (question_prompts, approach_prompts, curation_prompts,
                                                     judge_prompts, pairwise_prompts, chat)
                 for n in dir(module) if n.isupper() and not n.startswith("_")
                 and isinstance(getattr(module, n), (str, dict, tuple))} - {(m.__name__, "SECTIONS") for m in (
                     approach_prompts, judge_prompts, chat)}  # the sections are hashed apart
    assert constants - mapped == set(), "add these prompts to versions.PROMPTS"
    sections = set(load_profile("paper").model_dump()) - {"name"}
    used = {section[0].split(".")[0] for entries in versions.SETTINGS.values() for section in entries}
    assert sections - used - versions.UNVERSIONED_SECTIONS == set(), "add these profile sections to versions.SETTINGS"


# --- staleness through Dagster's own resolver, after a real materialization -----------------------

parts = dg.StaticPartitionsDefinition(["arts", "humanities"])


def stand_ins(profile) -> list[dg.AssetsDefinition]:
    """Small assets with the real keys, lineage and partitions of the data half of the graph, carrying the
    code versions versions.py gives for `profile` (the real ones call a teacher)."""
    def make(name, deps, partitioned=True):
        @dg.asset(name=name, deps=deps, partitions_def=parts if partitioned else None)
        def _asset(context) -> None:
            return None
        return _asset

    chain = [("subdomains", []), ("raw_questions", ["subdomains"]), ("deduped_questions", ["raw_questions"]),
             ("approaches", ["deduped_questions"]), ("dataset_split", ["approaches"])]
    made = [make(n, d) for n, d in chain]
    made.append(make("lora_adapter", [dg.AssetDep("dataset_split", partition_mapping=dg.AllPartitionMapping())],
                     partitioned=False))
    return versions.with_code_versions(made, profile)


def stale_assets(instance, assets) -> dict[str, str]:
    """`asset[partition]` -> the categories of its root stale causes, for every stale partition."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    graph = dg.Definitions(assets=assets).resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    out = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        partition_keys = node.partitions_def.get_partition_keys() if node.partitions_def else [None]
        for pk in partition_keys:
            if resolver.get_status(key, pk) == StaleStatus.STALE:
                causes = resolver.get_stale_root_causes(key, pk)
                out[key.to_user_string() + (f"[{pk}]" if pk else "")] = ",".join(sorted({c.category.value for c in causes}))
    return out


def test_dagster_reports_exactly_the_changed_assets_stale(monkeypatch):
    profile = load_profile("paper")
    with dg.instance_for_test() as instance:
        original = stand_ins(profile)
        for field in ("arts", "humanities"):
            assert dg.materialize(original[:5], partition_key=field, instance=instance).success
        assert dg.materialize(original, selection=["lora_adapter"], instance=instance).success
        assert stale_assets(instance, original) == {}

        monkeypatch.setattr(approach_prompts, "APPROACH_USER", approach_prompts.APPROACH_USER + " Cite sources.")
        edited = stand_ins(profile)
        # only the asset whose prompt changed is stale, for its code, in both partitions ...
        assert stale_assets(instance, edited) == {"approaches[arts]": "CODE", "approaches[humanities]": "CODE"}
        # ... and once it is rematerialized (arts only) its new data makes what follows it stale, there alone
        assert dg.materialize(edited[:5], selection=["approaches"], partition_key="arts", instance=instance).success
        assert stale_assets(instance, edited) == {"approaches[humanities]": "CODE", "dataset_split[arts]": "DATA"}
        monkeypatch.undo()

    with dg.instance_for_test() as instance:
        for field in ("arts", "humanities"):
            assert dg.materialize(original[:5], partition_key=field, instance=instance).success
        assert dg.materialize(original, selection=["lora_adapter"], instance=instance).success
        retrained = stand_ins(load_profile("paper", overrides={"training": {"learning_rate": 1e-4}}))
        assert stale_assets(instance, retrained) == {"lora_adapter": "CODE"}


def test_new_data_from_the_teacher_marks_what_follows_stale_and_identical_bytes_do_not(tmp_path, monkeypatch):
    """A new generation round changes what the teacher writes but no code version: the lake's content
    hashes are what make the downstream assets stale."""
    import os

    from research_tuner.lake import ParquetLakeIOManager

    @dg.asset(partitions_def=parts, code_version="1")
    def questions(context) -> pd.DataFrame:
        return pd.DataFrame({"field": [context.partition_key], "round": [os.environ["RT_TEST_ROUND"]]})

    @dg.asset(partitions_def=parts, code_version="1")
    def split(questions: pd.DataFrame) -> pd.DataFrame:
        return questions.assign(split="train")

    resources = {"io_manager": ParquetLakeIOManager(root=str(tmp_path))}
    with dg.instance_for_test() as instance:
        monkeypatch.setenv("RT_TEST_ROUND", "0")
        for field in ("arts", "humanities"):
            assert dg.materialize([questions, split], partition_key=field, instance=instance,
                                  resources=resources).success
        assert stale_assets(instance, [questions, split]) == {}
        first = instance.get_latest_materialization_event(questions.key).asset_materialization.tags
        # the same bytes again (a rerun answered from the teacher's cache): nothing downstream is stale
        assert dg.materialize([questions], partition_key="humanities", instance=instance, resources=resources).success
        assert stale_assets(instance, [questions, split]) == {}
        monkeypatch.setenv("RT_TEST_ROUND", "1")  # the schedule's new round: new data, same code
        assert dg.materialize([questions], partition_key="arts", instance=instance, resources=resources).success
        assert stale_assets(instance, [questions, split]) == {"split[arts]": "DATA"}
        latest = instance.get_latest_materialization_event(questions.key).asset_materialization.tags
        assert latest["dagster/data_version"] != first["dagster/data_version"]
