"""Import time of the image's single-user program with and without the jupyterhub patch, against a bare JupyterLab.

What a Docker spawn waits for is mostly the container's Python importing its server. This bench times, inside the
image, the imports of the three programs, each in a fresh container (``--network none``, the user's uid), interleaved
``--runs`` times so that the machine's load hits all three alike:

* ``lab``: what a bare ``jupyter lab`` imports (``jupyter_server.serverapp``, ``jupyterlab.labapp``), in IMAGE;
* ``singleuser``: the same plus ``jupyterhub.singleuser.extension`` (``jupyterhub-singleuser``), in IMAGE;
* ``singleuser unpatched``: the same in UNPATCHED, an image built without ``images/base/patches``.

Prints each median (seconds, timed inside Python with ``time.perf_counter``, so container start-up is excluded),
the median of what ``jupyterhub.singleuser.extension`` adds after JupyterLab's imports in the same process (the part
the patch is about, measured against its own process's JupyterLab imports, so the least sensitive to load), how many
modules it adds, and the ratios. Robust to load as a ratio, not in seconds.

    .venv/bin/python bench/singleuser_imports.py --unpatched IMAGE [--image polartep/base] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess

PROGRAM = """
import json, sys, time
started = time.perf_counter()
import jupyter_server.serverapp, jupyterlab.labapp
lab = time.perf_counter()
before = set(sys.modules)
if {singleuser}:
    import jupyterhub.singleuser.extension
done = time.perf_counter()
added = set(sys.modules) - before
print(json.dumps({{"seconds": done - started, "lab": lab - started, "added": len(added),
    "database_layer": sorted(m for m in added if m.split(".")[0] in ("sqlalchemy", "alembic"))[:3]}}))
"""


def timed_imports(image: str, singleuser: bool) -> dict:
    """One fresh container of image: how long the imports took and what the single-user extension added."""
    result = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--user", "1000", "--entrypoint", "/opt/venv/bin/python",
         image, "-c", PROGRAM.format(singleuser=singleuser)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default="polartep/base")
    parser.add_argument("--unpatched", required=True, help="the same image built without images/base/patches")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    variants = {
        "lab": (args.image, False),
        "singleuser": (args.image, True),
        "singleuser unpatched": (args.unpatched, True),
    }
    timed_imports(args.image, True)  # warm-up: the image's files in the page cache
    timed_imports(args.unpatched, True)
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    for round_ in range(args.runs):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
        for name in order:
            samples[name].append(timed_imports(*variants[name]))
    median = {name: statistics.median(s["seconds"] for s in runs) for name, runs in samples.items()}
    for name, runs in samples.items():
        seconds = sorted(s["seconds"] for s in runs)
        print(
            f"{name:22s} median {median[name]:.3f} s ({seconds[0]:.3f}-{seconds[-1]:.3f}); "
            f"modules added by jupyterhub.singleuser.extension: {runs[0]['added']}; "
            f"database layer among them: {runs[0]['database_layer'] or 'none'}"
        )
    extra = {
        name: statistics.median(s["seconds"] - s["lab"] for s in samples[name])
        for name in ("singleuser", "singleuser unpatched")
    }
    print(
        f"jupyterhub.singleuser.extension after JupyterLab's imports: {extra['singleuser']:.3f} s patched, "
        f"{extra['singleuser unpatched']:.3f} s unpatched (median lab imports in the same processes: "
        f"{statistics.median(s['lab'] for s in samples['singleuser']):.3f} s / "
        f"{statistics.median(s['lab'] for s in samples['singleuser unpatched']):.3f} s)"
    )
    print(f"singleuser / singleuser unpatched: {median['singleuser'] / median['singleuser unpatched']:.3f}")
    print(f"singleuser / lab: {median['singleuser'] / median['lab']:.3f}")
    print(f"singleuser unpatched / lab: {median['singleuser unpatched'] / median['lab']:.3f}")


if __name__ == "__main__":
    main()
