"""Cost of keeping JupyterHub's groups in line with projects, against a real platform (local mode).

Creates ``--projects`` projects of ``--members`` members each through the API (each request commits and then syncs
the hub group), then times ``POST /api/v1/projects/reconcile`` when nothing has drifted and after every project
group was deleted behind the service's back. Prints medians and totals; the numbers go to ``bench/RESULTS.md``.

    .venv/bin/python bench/project_groups.py [--projects 50] [--members 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import RunningPlatform  # noqa: E402

PROJECTS = "/services/platform/api/v1/projects"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=50)
    parser.add_argument("--members", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root, RunningPlatform(Path(root)).running() as platform:
        owner_token = platform.create_user("owner")
        people = [f"member{i}" for i in range(args.members - 1)]
        for name in people:
            platform.create_user(name)
        creates, adds = [], []
        for index in range(args.projects):
            name = f"bench-{index}"
            started = time.perf_counter()
            r = platform.api("POST", PROJECTS, owner_token, json={"name": name})
            creates.append(time.perf_counter() - started)
            assert r.status_code == 201 and r.json()["group_sync"] == "synced", r.text
            for person in people:
                started = time.perf_counter()
                r = platform.api("POST", f"{PROJECTS}/{name}/members", owner_token, json={"user": person})
                adds.append(time.perf_counter() - started)
                assert r.json()["group_sync"] == "synced", r.text
        admin = platform.admin_token
        started = time.perf_counter()
        report = platform.api("POST", f"{PROJECTS}/reconcile", admin, timeout=300).json()
        idle = time.perf_counter() - started
        assert not report["added"] and not report["created"], report
        for index in range(args.projects):
            platform.api("DELETE", f"/hub/api/groups/bench-{index}", admin)
        started = time.perf_counter()
        report = platform.api("POST", f"{PROJECTS}/reconcile", admin, timeout=300).json()
        repair = time.perf_counter() - started
        assert len(report["created"]) == args.projects, report
    print(f"projects: {args.projects} x {args.members} members")
    print(f"create project (commit + group sync), median: {statistics.median(creates) * 1000:.0f} ms")
    print(f"add member (commit + group sync), median:     {statistics.median(adds) * 1000:.0f} ms")
    print(f"reconcile, nothing drifted:                   {idle:.2f} s")
    print(f"reconcile, every group re-created:            {repair:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
