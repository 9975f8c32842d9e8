"""What the GPU run carries (benchmarks/gpu/carry/, git-ignored): checks that the wheels' requirements are met on
the GPU machine and that the tree that travels fits in the device tool's 64 MiB.

    python benchmarks/gpu/carry.py          # fetch_wheels.sh runs it after downloading
    python benchmarks/gpu/carry.py --pins   # wheels.txt with each bare name pinned to the version installed here
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CARRY = HERE / "carry"
LIMIT_BYTES = 64 * 2**20
#: The GPU machine's Python (KINDS.md): requirement markers are evaluated for it.
DEVICE_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                  "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
                  "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}


def listed(path: Path) -> set[str]:
    """Normalised distribution names of a one-per-line list (device_packages.txt, wheels.txt)."""
    from packaging.utils import canonicalize_name

    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {canonicalize_name(line.split("==")[0]) for line in lines if line}


def pinned(path: Path) -> list[str]:
    """``name==version`` for each line of wheels.txt: a pinned line as written, a bare name in the version
    installed in this environment (the one the tests ran with). A bare name that is not installed is an error."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for line in (line.split("#")[0].strip() for line in path.read_text().splitlines()):
        if not line or "==" in line:
            pins += [line] if line else []
            continue
        try:
            pins.append(f"{line}=={version(line)}")
        except PackageNotFoundError:
            raise SystemExit(f"{line} (in {path.name}) is not installed here: run scripts/setup.sh, "
                             f"or pin it as {line}==<version>") from None
    return pins


def unmet(requirements: dict[str, list[str]]) -> dict[str, list[str]]:
    """For each carried distribution, its requirements (Requires-Dist lines) that apply on the GPU machine and
    that neither the machine's image nor the other carried wheels provide (by name; the image's versions are
    not listed). Empty when everything is there."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    there = listed(HERE / "device_packages.txt") | listed(HERE / "wheels.txt")
    problems = {}
    for name, lines in requirements.items():
        missing = []
        for line in lines:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(DEVICE_MARKERS):
                continue  # an extra, or another platform's
            if canonicalize_name(requirement.name) not in there:
                missing.append(line)
        if missing:
            problems[name] = missing
    return problems


def wheel_requirements(wheels: list[Path]) -> dict[str, list[str]]:
    """Requires-Dist lines of each wheel file, by distribution name."""
    found = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(metadata).decode()
        name = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Name:"))
        found[name] = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    return found


def travelling_bytes() -> int:
    """Bytes that travel: the tracked and untracked-not-ignored files, and the carried folder."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.split(b"\0")
    tree = sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())
    return tree + sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file())


def main() -> None:
    if sys.argv[1:] == ["--pins"]:  # fetch_wheels.sh: the exact versions to download
        print("\n".join(pinned(HERE / "wheels.txt")))
        return
    wheels = sorted((CARRY / "wheels").glob("*.whl"))
    pins = listed(HERE / "wheels.txt")
    problems = []
    if len(wheels) != len(pins):
        problems.append(f"{len(wheels)} wheels in {CARRY / 'wheels'} for {len(pins)} pins in wheels.txt")
    for name, missing in unmet(wheel_requirements(wheels)).items():
        problems.append(f"{name} needs {', '.join(missing)}, which the GPU machine lacks: add it to wheels.txt")
    size = travelling_bytes()
    if size > LIMIT_BYTES:
        problems.append(f"{size / 2**20:.1f} MiB would travel, over the device tool's 64 MiB")
    if problems:
        sys.exit("carry check failed:\n  " + "\n  ".join(problems))
    print(f"carry check passed: {len(wheels)} wheels, their requirements met there, {size / 2**20:.1f} MiB travels")


if __name__ == "__main__":
    main()
