"""The dataset export: Parquet shards per field and split that `datasets.load_dataset` reads offline from the
folder (each field a configuration, `all` the default), and the dataset card with counts and provenance."""

from __future__ import annotations

import pandas as pd
import pytest
from huggingface_hub import DatasetCard

from research_tuner.lib.release import dataset as export
from research_tuner.lib.release.dataset import Provenance, export_dataset

FIELDS = {"arts": ("music", "film"), "humanities": ("history",)}


def split_table() -> pd.DataFrame:
    rows = []
    for field, subdomains in FIELDS.items():
        for subdomain in subdomains:
            for i in range(8):
                rows.append({"question_id": f"{field}-{subdomain}-{i}", "field": field, "subdomain": subdomain,
                             "question": f"How does {subdomain} change with {i}?", "approach": f"## Hypothesis\n{i}",
                             "split": "validation" if i < 2 else "train", "split_seed": 0,
                             "validation_fraction": 0.25})
    return pd.DataFrame(rows)


@pytest.fixture
def exported(tmp_path):
    table = split_table()
    provenance = Provenance(teacher_model="gpt-4.1-mini", generation_rounds=[0, 1],
                            settings={"dedup": {"lexical_threshold": 0.7, "semantic": True}, "split": {"seed": 0}})
    counts = export_dataset(table, tmp_path / "dataset", provenance)
    return table, tmp_path / "dataset", counts


def test_load_dataset_reads_every_field_and_split_offline(exported, monkeypatch, tmp_path):
    from functools import partial

    from datasets import load_dataset

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # a cache of its own: datasets 5.2 keys a local folder's cache by its file layout, not the files' contents
    load_dataset = partial(load_dataset, cache_dir=str(tmp_path / "hf_cache"))
    table, folder, counts = exported
    assert counts == {"train": 18, "validation": 6}
    everything = load_dataset(str(folder))  # the default configuration: all fields
    assert {name: len(everything[name]) for name in everything} == counts
    assert everything["train"].column_names == list(export.COLUMNS)
    arts = load_dataset(str(folder), "arts")
    expected = table[(table["field"] == "arts") & (table["split"] == "validation")].sort_values("question_id")
    assert arts["validation"]["question_id"] == expected["question_id"].tolist()
    assert arts["validation"]["approach"] == expected["approach"].tolist()
    assert len(load_dataset(str(folder), "humanities")["train"]) == 6


def test_the_card_states_taxonomy_counts_teacher_rounds_dedup_and_the_licence_question(exported):
    _, folder, _ = exported
    card = DatasetCard.load(folder / "README.md")
    assert card.data.license == "other" and card.data.task_categories == ["text-generation"]
    assert [c["config_name"] for c in card.data.configs] == ["all", "arts", "humanities"]
    text = card.text
    assert "| Arts" in text and "music" in text and "history" in text
    assert "| **all**" in text and "| 18 " in text and "| 6 " in text  # the totals row
    assert "gpt-4.1-mini" in text and "Generation rounds: 0, 1" in text
    assert "lexical_threshold: 0.7" in text
    assert "terms of use" in text and "Licence" in text


def test_shards_split_large_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "SHARD_ROWS", 4)
    export_dataset(split_table(), tmp_path, Provenance(teacher_model="t", generation_rounds=[0]))
    shards = sorted(p.name for p in (tmp_path / "data" / "arts").glob("train-*.parquet"))
    assert shards == [f"train-{i:05d}-of-00003.parquet" for i in range(3)]  # 12 rows, 4 per shard
    assert sum(len(pd.read_parquet(tmp_path / "data" / "arts" / s)) for s in shards) == 12


def test_a_table_without_the_columns_is_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks column.*approach"):
        export_dataset(split_table().drop(columns=["approach"]), tmp_path, Provenance("t", [0]))
