"""Apply the image's downstream patches to its installed Python packages, or fail the image build.

Usage (in images/base/Dockerfile): ``/opt/venv/bin/python apply.py PATCH...``

Each PATCH is a unified diff whose paths (``a/<path>``, ``b/<path>``) are relative to the running interpreter's
site-packages (``purelib``). Guaranteed rules:

* A hunk applies only where its old text (context and removed lines) occurs exactly once in the installed file;
  line numbers are ignored. A hunk that does not match, or matches twice, stops with exit status 1 and names the
  patch, file and hunk, so an upgraded package never ships with the patch silently half applied or skipped.
* Nothing is written unless every hunk of every file of the patch applies (all hunks are checked first).
* Standard library only: it runs in the image's build stage, which has no ``patch`` program.
"""

from __future__ import annotations

import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Hunk:
    """One hunk: the lines it expects (context and removed) and the lines it leaves (context and added)."""

    header: str
    old: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)


def parse(patch: Path) -> dict[str, list[Hunk]]:
    """Return the hunks of a unified diff by target path (the ``+++ b/<path>`` name without ``b/``)."""
    files: dict[str, list[Hunk]] = {}
    hunks: list[Hunk] | None = None
    for number, line in enumerate(patch.read_text().splitlines(keepends=True), start=1):
        if line.startswith("--- "):
            hunks = None
        elif line.startswith("+++ "):
            name = line[4:].split("\t")[0].strip()
            hunks = files.setdefault(name.removeprefix("b/"), [])
        elif line.startswith("@@ "):
            if hunks is None:
                raise SystemExit(f"{patch}:{number}: hunk before a file header")
            hunks.append(Hunk(header=line.strip()))
        elif hunks and line[:1] in (" ", "-", "+"):
            text = line[1:]
            if line[0] in (" ", "-"):
                hunks[-1].old.append(text)
            if line[0] in (" ", "+"):
                hunks[-1].new.append(text)
        elif line.startswith("\\"):  # "\ No newline at end of file": not used by these patches
            raise SystemExit(f"{patch}:{number}: patches must end their files with a newline")
    if not files or not all(files.values()):
        raise SystemExit(f"{patch}: no hunks found")
    return files


def apply(patch: Path, root: Path) -> list[str]:
    """Apply every hunk of patch under root, or raise SystemExit naming the first that does not apply."""
    patched: dict[Path, str] = {}
    for name, hunks in parse(patch).items():
        path = root / name
        if not path.is_file():
            raise SystemExit(f"{patch.name}: {path} does not exist (package changed or not installed)")
        text = path.read_text()
        for index, hunk in enumerate(hunks, start=1):
            old, new = "".join(hunk.old), "".join(hunk.new)
            found = text.count(old)
            if found != 1:
                raise SystemExit(
                    f"{patch.name}: hunk {index} of {name} ({hunk.header}) "
                    f"{'does not apply' if found == 0 else f'matches {found} places'}: the installed package is "
                    "not the one this patch was written for. Check whether upstream made the change already "
                    "(then drop the patch) or rewrite the patch for the new version."
                )
            text = text.replace(old, new)
        patched[path] = text
    for path, text in patched.items():
        path.write_text(text)
    return [str(path) for path in patched]


def main(argv: list[str]) -> int:
    root = Path(sysconfig.get_paths()["purelib"])
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    for patch in map(Path, argv):
        for path in apply(patch, root):
            print(f"patched {path} ({patch.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
