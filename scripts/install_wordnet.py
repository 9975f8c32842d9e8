"""Install WordNet 3.0 for NLTK (METEOR's synonym matching) from Debian's wordnet packages, offline.

`nltk.download("wordnet")` needs a server this machine cannot reach. Debian's `wordnet-base` and
`wordnet-sense-index` hold the same WordNet 3.0 database in /usr/share/wordnet but leave out the
`lexnames` file NLTK's reader opens first; this repo ships it (research_tuner/data/wordnet_lexnames,
copied from the lexnames(5WN) man page). The script copies the database files (~36 MB) into
`<target>/corpora/wordnet/`, writes lexnames beside them, and checks that NLTK then reads WordNet 3.0.

    python scripts/install_wordnet.py [TARGET]   # default: <sys.prefix>/share/nltk_data

The default is on `nltk.data.path` inside a virtualenv, so nothing else needs configuring. Running it
again refreshes out-of-date files and is otherwise a no-op.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SOURCE = Path("/usr/share/wordnet")
DEBIAN_PACKAGES = "wordnet-base wordnet-sense-index"
# Every file nltk.corpus.reader.wordnet.WordNetCorpusReader._FILES lists, except lexnames.
# cntlist.rev is only read by Lemma.count(), so an old Debian package without it still works.
DATABASE_FILES = (
    [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")]
    + [f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")]
    + ["index.sense", "cntlist.rev"]
)
REQUIRED = set(DATABASE_FILES) - {"cntlist.rev"}  # the reader opens all of these when it loads
LEXNAMES = Path(__file__).resolve().parents[1] / "research_tuner" / "data" / "wordnet_lexnames"


def fail(message: str) -> None:
    sys.exit(f"install_wordnet: {message}")


def lexnames_text() -> str:
    """The packaged lexnames file: from the installed package, else from this checkout."""
    try:
        from importlib import resources

        return resources.files("research_tuner.data").joinpath("wordnet_lexnames").read_text()
    except (ImportError, FileNotFoundError):
        return LEXNAMES.read_text()


def place(src: Path, dst: Path) -> None:
    """Copy src to dst unless an up-to-date copy is there.

    A copy, not a link: NLTK 3.10's path checks refuse a symlink that leaves the corpus root and
    any file with more than one hard link.
    """
    if dst.is_file() and not dst.is_symlink():
        a, b = src.stat(), dst.stat()
        if b.st_nlink == 1 and (a.st_size, int(a.st_mtime)) == (b.st_size, int(b.st_mtime)):
            return
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    shutil.copy2(src, dst)


def install(target: Path) -> Path:
    """Build `target/corpora/wordnet` and return that folder."""
    missing = sorted(name for name in REQUIRED if not (SOURCE / name).is_file())
    if missing:
        fail(f"WordNet 3.0 is not installed in {SOURCE} (missing {', '.join(missing)}). "
             f"Install the Debian packages: sudo apt-get install {DEBIAN_PACKAGES}")
    folder = target / "corpora" / "wordnet"
    folder.mkdir(parents=True, exist_ok=True)
    for name in DATABASE_FILES:
        if (SOURCE / name).is_file():
            place(SOURCE / name, folder / name)
    text = lexnames_text()
    if len(text.splitlines()) != 45:
        fail("the packaged wordnet_lexnames file does not have 45 lines")
    lexnames = folder / "lexnames"
    if lexnames.is_symlink():
        lexnames.unlink()
    if not lexnames.exists() or lexnames.read_text() != text:
        lexnames.write_text(text)
    return folder


def verify(target: Path, folder: Path) -> str:
    """Load WordNet through NLTK from `target` first and return the version it reports."""
    import nltk

    if str(target) not in nltk.data.path:
        nltk.data.path.insert(0, str(target))
    from nltk.corpus import wordnet

    if Path(str(wordnet.root)).resolve() != folder:
        fail(f"NLTK read WordNet from {wordnet.root}, not from {folder}")
    if not wordnet.synsets("dog"):
        fail("NLTK loaded WordNet but found no synsets for 'dog'")
    version = wordnet.get_version()
    if version != "3.0":
        fail(f"NLTK reports WordNet version {version!r}, expected '3.0'")
    return version


def main(argv: list[str]) -> None:
    target = Path(argv[0]) if argv else Path(sys.prefix) / "share" / "nltk_data"
    target = target.expanduser().resolve()
    folder = install(target)
    version = verify(target, folder)
    print(f"WordNet {version} for NLTK installed in {folder}")


if __name__ == "__main__":
    main(sys.argv[1:])
