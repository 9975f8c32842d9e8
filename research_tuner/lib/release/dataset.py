"""The question/approach pairs as a Hugging Face `datasets` dataset: Parquet shards per field and split, and a
dataset card (README.md) whose YAML header declares one configuration per field plus `all`, with the taxonomy,
the counts, the teacher, the generation rounds, the dedup settings and the licence question of teacher-written
text. `datasets.load_dataset(folder, "biology")` reads it offline; the Hub reads the same layout."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from research_tuner.lib.shared.taxonomy import get_field

#: The columns a dataset row carries (the split is the file it lies in).
COLUMNS = ("question_id", "field", "subdomain", "question", "approach")
SPLITS = ("train", "validation")
#: Rows per Parquet shard.
SHARD_ROWS = 50_000
ALL_FIELDS = "all"


@dataclass(frozen=True)
class Provenance:
    """Where the rows came from: the teacher, the generation rounds, and the settings that shaped them."""

    teacher_model: str
    generation_rounds: list[int]
    settings: dict[str, Any] = field(default_factory=dict)  # section name -> its settings (generation, dedup, split)
    license: str = "other"


def export_dataset(split_table: pd.DataFrame, folder: Path, provenance: Provenance) -> dict[str, int]:
    """Write `folder/data/<field>/<split>-0000i-of-0000n.parquet` and `folder/README.md` from the dataset_split
    table; returns the rows per split."""
    missing = [c for c in (*COLUMNS, "split") if c not in split_table.columns]
    if missing:
        raise ValueError(f"the dataset_split table lacks column(s) {', '.join(missing)}")
    folder = Path(folder)
    fields = sorted(split_table["field"].unique())
    configs = [{"config_name": ALL_FIELDS, "default": True, "data_files": []}]
    for name in SPLITS:
        if (split_table["split"] == name).any():
            configs[0]["data_files"].append({"split": name, "path": f"data/*/{name}-*.parquet"})
    for key in fields:
        rows = split_table[split_table["field"] == key]
        files = []
        for name in SPLITS:
            part = rows[rows["split"] == name].sort_values("question_id")[list(COLUMNS)].reset_index(drop=True)
            if part.empty:
                continue
            _write_shards(part, folder / "data" / key, name)
            files.append({"split": name, "path": f"data/{key}/{name}-*.parquet"})
        configs.append({"config_name": key, "data_files": files})
    counts = {name: int((split_table["split"] == name).sum()) for name in SPLITS}
    (folder / "README.md").write_text(dataset_card(split_table, configs, provenance))
    return counts


def _write_shards(frame: pd.DataFrame, folder: Path, split: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shards = max(1, math.ceil(len(frame) / SHARD_ROWS))
    for i in range(shards):
        part = frame.iloc[i * SHARD_ROWS:(i + 1) * SHARD_ROWS]
        part.to_parquet(folder / f"{split}-{i:05d}-of-{shards:05d}.parquet", index=False)


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M"


def dataset_card(split_table: pd.DataFrame, configs: list[dict], provenance: Provenance) -> str:
    from huggingface_hub import DatasetCardData

    data = DatasetCardData(
        license=provenance.license, language=["en"], task_categories=["text-generation"],
        size_categories=[_size_category(len(split_table))], tags=["synthetic", "research-approaches",
                                                                 "research-tuner"],
        pretty_name="Research questions and approaches (teacher-written)", configs=configs,
    )
    counts = (split_table.groupby(["field", "subdomain", "split"]).size().unstack("split", fill_value=0)
              .reindex(columns=list(SPLITS), fill_value=0).reset_index())
    rows = [(get_field(r.field).title if _known(r.field) else r.field, r.subdomain, int(r.train), int(r.validation))
            for r in counts.itertuples()]
    rows.append(("**all**", f"{split_table['subdomain'].nunique()} subdomains", int(counts["train"].sum()),
                 int(counts["validation"].sum())))
    rounds = ", ".join(str(r) for r in provenance.generation_rounds) or "0"
    settings = yaml.safe_dump(provenance.settings, sort_keys=False).strip()
    body = "\n\n".join([
        "# Research questions and approaches",
        "Research questions across fields of study, each with a research approach in seven sections, written by a "
        "teacher LLM to fine-tune a smaller model (research_tuner, after the paper *Fine-Tuning LLMs For "
        "Research*). Near-duplicate questions were removed across all fields before the split, and the split "
        "keeps near-duplicate groups on one side, so validation questions are not paraphrases of training ones.",
        "## Configurations\n\n`all` (the default) holds every field; each field is also a configuration of its own:\n"
        "`datasets.load_dataset(<this repo or folder>, \"<field>\")`. Columns: " + ", ".join(f"`{c}`" for c in COLUMNS)
        + "; the split is the file a row lies in.",
        "## Taxonomy and counts\n\n" + _table(["field", "subdomain", "train", "validation"], rows),
        f"## How it was made\n\n- Teacher model: `{provenance.teacher_model}`\n- Generation rounds: {rounds} (a "
        "new round asks the teacher for new data on purpose; it is part of every seed)\n- Settings that shaped "
        f"the rows (generation, dedup, split):\n\n```yaml\n{settings}\n```",
        "## Licence: an open question\n\nEvery question and approach was written by the teacher model above. "
        "Whether its outputs can be released, and under which licence, depends on the teacher provider's terms of "
        "use (several forbid using outputs to train competing models) and on the law where you publish; "
        "machine-written text may carry no copyright of its own. The card says `license: "
        f"{provenance.license}` until you have checked; set release.dataset_license once you have.",
    ])
    return f"---\n{data.to_yaml()}\n---\n\n{body}\n"


def _known(key: str) -> bool:
    try:
        get_field(key)
    except KeyError:
        return False
    return True


def _table(header: list[str], rows: list[tuple]) -> str:
    return pd.DataFrame(rows, columns=header).to_markdown(index=False, disable_numparse=True)
