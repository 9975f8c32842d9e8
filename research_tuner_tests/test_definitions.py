"""The code location loads with the asset keys, field partitions, checks and jobs later tools rely on."""

import dagster as dg

from research_tuner.definitions import defs
from research_tuner.partitions import FIELDS, field_round_partitions

PER_ROUND = ["subdomains", "raw_questions"]
PARTITIONED = ["deduped_questions", "approaches", "dataset_split",
               "eval_generations", "eval_judgements", "eval_preferences", "eval_scores"]


def test_assets_and_lineage():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    unpartitioned = {"question_clusters", "lora_adapter", "eval_report", "model_release"}
    assert keys == set(PER_ROUND) | set(PARTITIONED) | unpartitioned
    parents = {k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys} for k in keys}
    assert parents["raw_questions"] == {"subdomains"}
    assert parents["question_clusters"] == {"raw_questions"}  # all fields: duplicates across fields are caught
    assert parents["deduped_questions"] == {"question_clusters"}
    assert parents["approaches"] == {"deduped_questions"}
    assert parents["dataset_split"] == {"approaches"}
    assert parents["lora_adapter"] == {"dataset_split"}
    assert parents["eval_generations"] == {"dataset_split", "lora_adapter"}
    assert parents["eval_judgements"] == {"eval_generations"}
    assert parents["eval_preferences"] == {"eval_generations"}
    assert parents["eval_scores"] == {"eval_generations", "eval_judgements", "eval_preferences"}
    # scoring is its own step: the report reads the scores and the pairwise verdicts, never the answers
    assert parents["eval_report"] == {"eval_scores", "eval_preferences"}
    assert parents["model_release"] == {"lora_adapter", "eval_report", "dataset_split"}


def test_field_partitions():
    assert FIELDS == ["arts", "engineering", "formal_sciences", "humanities", "life_sciences",
                      "natural_sciences", "professional", "social_sciences"]
    graph = defs.resolve_asset_graph()
    for key in PARTITIONED:
        assert graph.get(dg.AssetKey(key)).partitions_def.get_partition_keys() == FIELDS
    for key in PER_ROUND:  # a field x generation_round grid, the rounds added as they come
        partitions = graph.get(dg.AssetKey(key)).partitions_def
        assert partitions == field_round_partitions
        assert [d.name for d in partitions.partitions_defs] == ["field", "round"]
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions("generation_round", ["0", "1"])
            assert partitions.get_partition_keys(dynamic_partitions_store=instance) == [
                f"{f}|{r}" for f in FIELDS for r in ("0", "1")]
    assert graph.get(dg.AssetKey("lora_adapter")).partitions_def is None
    assert graph.get(dg.AssetKey("question_clusters")).partitions_def is None


GROUPS = ("questions", "approaches", "training", "evaluation", "release")


def test_every_asset_says_group_kind_and_description():
    for spec in defs.resolve_all_asset_specs():
        assert spec.group_name in GROUPS, spec.key
        assert spec.kinds and spec.description, spec.key


def test_groups_read_left_to_right_and_match_the_package_folders():
    """The group lineage has no arrow going back, and each group's assets live in the package of that name."""
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        for parent in node.parent_keys:
            assert GROUPS.index(graph.get(parent).group_name) <= GROUPS.index(node.group_name), (parent, key)
    for assets_def in defs.assets:
        for spec in assets_def.specs:
            module = assets_def.op.compute_fn.decorated_fn.__module__
            assert module == f"research_tuner.{spec.group_name}.assets", (spec.key, module)


def test_quality_gates_are_asset_checks():
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert {"every_approach_has_7_sections", "split_ratio_per_subdomain", "sample_only_from_validation",
            "unique_questions", "one_kept_per_cluster", "no_near_duplicate_leakage", "schema_and_rows"} <= checks


JOBS = {  # job: (the assets it materializes, its partitions: by field x round, by field, or none)
    "round_job": ({"subdomains", "raw_questions"}, "field x round"),
    "data_job": ({"question_clusters", "deduped_questions", "approaches", "dataset_split"}, "field"),
    "training_job": ({"lora_adapter"}, None),
    "evaluation_job": ({"eval_generations", "eval_judgements", "eval_preferences", "eval_scores"}, "field"),
    "report_job": ({"eval_report"}, None),
    "release_job": ({"model_release"}, None),
}


def test_jobs_select_one_stage_each_and_together_cover_every_asset():
    covered = set()
    for name, (assets, partitioned) in JOBS.items():
        job = defs.resolve_job_def(name)
        selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
        assert selected == assets, name
        if partitioned == "field":
            assert job.partitions_def.get_partition_keys() == FIELDS, name
        elif partitioned == "field x round":
            assert job.partitions_def == field_round_partitions, name
        else:
            assert job.partitions_def is None, name
        assert not covered & selected, name  # no asset is materialized by two jobs
        covered |= selected
    assert covered == {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}


def test_regeneration_schedule_is_off_and_asks_for_a_new_round():
    import datetime as dt

    schedule = defs.resolve_schedule_def("regeneration_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("generation_round", ["0"])
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 11, 30, 3, tzinfo=dt.timezone.utc),
            repository_def=defs.get_repository_def(),
        )
        requests = list(schedule.evaluate_tick(context).run_requests)
        # a round is added next to the earlier ones, and each field's round run writes only that round's file
        assert instance.get_dynamic_partitions("generation_round") == ["0", "2026113003"]
    assert sorted(str(r.partition_key) for r in requests) == [f"{f}|2026113003" for f in FIELDS]
    assert {r.job_name or schedule.job_name for r in requests} == {"round_job"}


def test_a_successful_round_run_launches_the_fields_data_job():
    sensor = defs.resolve_sensor_def("curate_new_rounds")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # the schedule's rounds reach the split
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("generation_round", ["0"])
        result = defs.resolve_job_def("round_job").execute_in_process(
            instance=instance, partition_key="arts|0", asset_selection=[dg.AssetKey("subdomains")],
            run_config={"resources": {"io_manager": {"config": {"root": str(instance.root_directory) + "/lake"}}}},
        )
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        context = dg.build_run_status_sensor_context(
            sensor_name="curate_new_rounds", dagster_instance=instance, dagster_run=run,
            dagster_event=result.get_run_success_event(), repository_def=defs.get_repository_def(),
        )
        request = sensor(context)
    assert request.partition_key == "arts" and request.run_key == f"curate-after-{result.run_id}"
