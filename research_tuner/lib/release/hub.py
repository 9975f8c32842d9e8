"""Publishing to the Hugging Face Hub with huggingface_hub: every target is checked (repository id, token in its
variable) before the first byte is uploaded; repositories are created private unless told otherwise. The token is
read from the environment when the upload starts and goes nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from research_tuner.lib.shared.errors import SettingsError

if TYPE_CHECKING:
    from research_tuner.settings import HubSettings


@dataclass(frozen=True)
class Upload:
    folder: Path
    repo_id: str | None
    repo_type: str  # "model" or "dataset"
    setting: str  # the settings key that names the repository, for the error


def hub_token(settings: HubSettings) -> str:
    """The write token from `settings.token_env`, or a SettingsError that says which variable to export."""
    token = os.environ.get(settings.token_env, "").strip()
    if not token:
        raise SettingsError(f"release.hub.push is on but ${settings.token_env} is empty: export a Hub token with "
                            "write access there (or name another variable in release.hub.token_env)")
    return token


def push_problems(settings: HubSettings, *, merged: bool) -> list[str]:
    """What stops a push, checked before the run starts (`merged`: whether training writes a merged model)."""
    problems = []
    if settings.push_merged and not merged:
        problems.append("release.hub.push_merged needs a merged model: set training.export_merged=true")
    try:
        hub_token(settings)
    except SettingsError as exc:
        problems.append(str(exc))
    return problems


def check_uploads(uploads: list[Upload], settings: HubSettings) -> str:
    """The token, once every upload has a repository id and a folder with files; else a SettingsError."""
    for upload in uploads:
        if not upload.repo_id:
            raise SettingsError(f"{upload.setting} is not set: name the Hub repository ('user/name') to push "
                                f"{upload.folder.name}/ to")
        if not upload.folder.is_dir() or not any(upload.folder.iterdir()):
            raise SettingsError(f"nothing to push: {upload.folder} is missing or empty")
    return hub_token(settings)


def publish(uploads: list[Upload], settings: HubSettings, *, api: Any = None,
            commit_message: str = "research_tuner release") -> dict[str, str]:
    """Create each repository (private per the settings; an existing one is kept as it is) and upload its folder.
    Returns repo id -> the commit's URL. `api`: an `HfApi` (made here with the token when None)."""
    token = check_uploads(uploads, settings)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    urls = {}
    for upload in uploads:
        api.create_repo(upload.repo_id, repo_type=upload.repo_type, private=settings.private, exist_ok=True)
        info = api.upload_folder(folder_path=str(upload.folder), repo_id=upload.repo_id,
                                 repo_type=upload.repo_type, commit_message=commit_message)
        urls[upload.repo_id] = str(getattr(info, "commit_url", info))
    return urls
