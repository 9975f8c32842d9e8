"""The `tracking` section (MLflow, off by default) and the `release` section (model and dataset cards, and
the optional push to the Hugging Face Hub)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from research_tuner.settings.base import Strict


class TrackingSettings(Strict):
    """Experiment tracking: one MLflow run per training run, tagged with its Dagster run id."""

    backend: Literal["none", "mlflow"] = Field(
        default="none", description="'mlflow': training parameters, the loss curve, validation loss, tokens per "
        "second, the evaluation scores and win rates, and the adapter go to an MLflow tracking server.")
    tracking_uri: str | None = Field(
        default=None, description="The MLflow tracking server or store (http://host:5000, sqlite:///mlflow.db). "
        "None: MLFLOW_TRACKING_URI, else MLflow's default. Credentials go in MLflow's own variables "
        "(MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN), never in the URI.")
    experiment: str = Field(default="research_tuner", min_length=1, description="The MLflow experiment's name.")

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, uri: str | None) -> str | None:
        if uri and (urlsplit(uri).password or urlsplit(uri).username):
            raise ValueError("put no user or password in tracking.tracking_uri (it is logged and stored); set "
                             "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead")
        return uri


class HubSettings(Strict):
    """Publishing to the Hugging Face Hub: off unless asked for, private by default."""

    push: bool = Field(default=False, description="Upload the model (and the dataset) when model_release runs.")
    model_repo_id: str | None = Field(default=None, description="'user/name' of the model repository.")
    dataset_repo_id: str | None = Field(
        default=None, description="'user/name' of the dataset repository; None: the dataset is not pushed.")
    push_merged: bool = Field(
        default=False, description="Push merged/ (a plain transformers model; needs training.export_merged) "
        "instead of the adapter.")
    private: bool = Field(default=True, description="Create the repositories private.")
    token_env: str = Field(default="HF_TOKEN", description="Variable holding a Hub token with write access "
                           "(never the token itself).")

    @field_validator("model_repo_id", "dataset_repo_id")
    @classmethod
    def _repo_id_shape(cls, repo_id: str | None) -> str | None:
        if repo_id is not None and (repo_id.count("/") != 1 or not all(repo_id.split("/"))):
            raise ValueError(f"{repo_id!r} is not a Hub repository id of the form 'user/name'")
        return repo_id

    @model_validator(mode="after")
    def _push_needs_a_model_repo(self) -> HubSettings:
        if self.push and not self.model_repo_id:
            raise ValueError("release.hub.push is on but release.hub.model_repo_id is not set: name the "
                             "repository ('user/name') or turn push off")
        return self


class ReleaseSettings(Strict):
    """What model_release writes beside the adapter: the cards, the dataset export, and the optional push."""

    license: str | None = Field(
        default=None, description="The model card's licence (a Hub licence id). None: the base model's, read from "
        "its own card where the folder has one, else from a table of known bases, else 'other'.")
    dataset_license: str = Field(
        default="other", description="The dataset card's licence. Teacher-generated text is bound by the "
        "teacher provider's terms; see the dataset card's licence section before choosing an open one.")
    hub: HubSettings = HubSettings()
