"""Publishing to the Hub: every target checked (repository id, token) before anything is uploaded, private by
default, the token from its variable only. The Hub cannot be reached here: a recording stand-in for HfApi
takes the calls (the only fake of this kind in the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from research_tuner.preflight import preflight
from research_tuner.lib.release.hub import Upload, publish
from research_tuner.settings import HubSettings, SettingsError, load_profile

TOKEN = "hf_test-this-must-never-be-printed-0123456789"


class RecordingHfApi:
    """Records create_repo / upload_folder calls with what they were given, as HfApi would receive them."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        files = sorted(p.name for p in Path(kwargs["folder_path"]).rglob("*") if p.is_file())
        self.calls.append(("upload_folder", {**kwargs, "files": files}))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"})()


@pytest.fixture
def folders(tmp_path):
    model, data = tmp_path / "model", tmp_path / "dataset"
    model.mkdir()
    data.mkdir()
    (model / "adapter_config.json").write_text("{}")
    (model / "README.md").write_text("---\nlibrary_name: peft\n---\n")
    (data / "README.md").write_text("---\nlicense: other\n---\n")
    return model, data


def uploads(folders, model_id="me/adapter", dataset_id="me/data"):
    model, data = folders
    return [Upload(model, model_id, "model", "release.hub.model_repo_id"),
            Upload(data, dataset_id, "dataset", "release.hub.dataset_repo_id")]


def test_a_missing_token_stops_before_anything_is_uploaded(folders, monkeypatch):
    monkeypatch.delenv("HF_WRITE_TOKEN", raising=False)
    api = RecordingHfApi()
    settings = HubSettings(push=True, model_repo_id="me/adapter", token_env="HF_WRITE_TOKEN")
    with pytest.raises(SettingsError, match=r"\$HF_WRITE_TOKEN is empty"):
        publish(uploads(folders), settings, api=api)
    assert api.calls == []


def test_a_missing_repository_id_stops_before_the_first_upload(folders, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = RecordingHfApi()
    with pytest.raises(SettingsError, match="release.hub.dataset_repo_id is not set") as caught:
        publish(uploads(folders, dataset_id=None), HubSettings(push=True, model_repo_id="me/adapter"), api=api)
    assert api.calls == []  # not even the model, which had its id
    assert TOKEN not in str(caught.value)


def test_push_without_a_model_repository_is_a_settings_error():
    with pytest.raises(SettingsError, match="release.hub.model_repo_id is not set"):
        load_profile("demo", overrides={"release": {"hub": {"push": True}}})
    with pytest.raises(SettingsError, match="not a Hub repository id"):
        load_profile("demo", overrides={"release": {"hub": {"model_repo_id": "no-slash"}}})


def test_preflight_names_the_missing_token_before_the_run(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    profile = load_profile("demo", overrides={"release": {"hub": {"push": True, "model_repo_id": "me/adapter"}}})
    assert any("$HF_TOKEN is empty" in p for p in preflight(profile, will_train=False).problems)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert preflight(profile, will_train=False).problems == []
    merged = load_profile("demo", overrides={"release": {"hub": {"push": True, "model_repo_id": "me/adapter",
                                                                  "push_merged": True}}})
    assert preflight(merged, will_train=False).problems == [
        "release.hub.push_merged needs a merged model: set training.export_merged=true"]


def test_the_repositories_are_created_private_and_the_folders_uploaded(folders, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = RecordingHfApi()
    urls = publish(uploads(folders), HubSettings(push=True, model_repo_id="me/adapter"), api=api)
    assert [name for name, _ in api.calls] == ["create_repo", "upload_folder", "create_repo", "upload_folder"]
    created = [kw for name, kw in api.calls if name == "create_repo"]
    assert [(c["repo_id"], c["repo_type"], c["private"], c["exist_ok"]) for c in created] == [
        ("me/adapter", "model", True, True), ("me/data", "dataset", True, True)]
    uploaded = [kw for name, kw in api.calls if name == "upload_folder"]
    assert uploaded[0]["files"] == ["README.md", "adapter_config.json"] and uploaded[1]["repo_type"] == "dataset"
    assert urls == {"me/adapter": "https://huggingface.co/me/adapter/commit/abc",
                    "me/data": "https://huggingface.co/me/data/commit/abc"}
    assert TOKEN not in repr(api.calls)  # the token goes to HfApi's constructor, never into a call


def test_public_when_asked(folders, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = RecordingHfApi()
    publish(uploads(folders)[:1], HubSettings(push=True, model_repo_id="me/adapter", private=False), api=api)
    assert api.calls[0][1]["private"] is False


def test_the_merged_model_is_pushed_with_its_card_without_copying_the_weights(tmp_path, monkeypatch):
    from research_tuner.release.assets import _merged_with_card

    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "model.safetensors").write_bytes(b"weights")
    (merged / "config.json").write_text("{}")
    card = tmp_path / "merged_model_card.md"
    card.write_text("---\nlibrary_name: transformers\n---\n")
    staged = _merged_with_card(merged, card)
    assert (staged / "model.safetensors").is_symlink() and (staged / "model.safetensors").read_bytes() == b"weights"
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = RecordingHfApi()
    publish([Upload(staged, "me/merged", "model", "release.hub.model_repo_id")],
            HubSettings(push=True, model_repo_id="me/merged", push_merged=True), api=api)
    assert api.calls[1][1]["files"] == ["README.md", "config.json", "model.safetensors"]
    with pytest.raises(SettingsError, match="nothing to push"):
        publish([Upload(_merged_with_card(merged, tmp_path / "absent.md"), "me/merged", "model", "x")],
                HubSettings(push=True, model_repo_id="me/merged"), api=RecordingHfApi())
