"""What a run covers besides the profile: its research fields (`--fields`: all 8 by default, else a checked
comma-separated list) and its data lake (`--lake`: a folder or an fsspec URL whose filesystem is installed)."""

from __future__ import annotations

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.lib.shared.taxonomy import field_keys


def select_fields(text: str | None) -> list[str]:
    """The field keys `text` names, in its order; None (no --fields given): every field. An empty list, an
    empty name between commas, an unknown or a repeated field is a SettingsError that names it."""
    known = field_keys()
    if text is None:
        return known
    choose = f"known: {', '.join(known)}"
    if not text.strip():
        raise SettingsError(f"--fields is empty: name one or more fields ({choose}), or leave --fields out for all "
                            f"{len(known)}")
    names = [name.strip() for name in text.split(",")]
    if "" in names:
        raise SettingsError(f"--fields {text!r} has an empty name (a stray comma?); {choose}")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SettingsError(f"--fields: unknown field(s) {', '.join(map(repr, unknown))}; {choose}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise SettingsError(f"--fields names {', '.join(repeated)} more than once")
    return names


def check_lake(root: str) -> str:
    """`root` if it names a folder or a URL of an installed fsspec filesystem; else a SettingsError saying why."""
    from upath import UPath  # here, not at import: the settings load where no lake library is (the GPU run)

    if not root.strip():
        raise SettingsError("--lake is empty: give a folder or an fsspec URL such as s3://bucket/lake")
    try:
        UPath(root)
    except (ValueError, ImportError) as exc:
        raise SettingsError(f"--lake {root!r}: {exc}") from None
    return root
