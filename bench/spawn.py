"""Spawn-to-ready through the platform vs. booting the same single-user server by hand.

Platform: ``POST /hub/api/users/<u>/server`` with a profile, until the hub reports the server ready (the user can
reach it). Baseline, ``--mode local``: the same ``jupyterhub-singleuser`` program's server (``jupyter lab``, same
venv, same extensions, same profile environment) started by hand on a free port, until ``/api/status`` answers.
Baseline, ``--mode docker``: a bare ``docker run`` of the profile's image with the same limits, host network and a
home volume, running ``jupyter lab`` until ``/api/status`` answers. Both timed ``--runs`` times in one run,
interleaved, each a fresh process or container; prints the medians and their ratio. Target: ratio <= 1.25.

    .venv/bin/python bench/spawn.py [--mode local|docker] [--runs 10] [--profile interactive]

``--users N`` (N > 1), local or Docker mode: N users spawning at once against N bare boots at once. Each round starts all N platform spawns
together (one thread per user, each timing its own spawn request until the hub reports its server ready), then
all N bare boots together (one thread each, until ``/api/status`` answers); ``--runs`` rounds (default 1), one
warm-up round of a single spawn and boot before. Both sides poll every ``--poll`` seconds (default 0.2 with N > 1,
so that N pollers do not load the hub they measure). Prints the p50 and the spread (last ready minus first ready)
of each side, and the ratio of the p50s.

    .venv/bin/python bench/spawn.py --users 10 [--runs 1] [--mode docker]

``--no-launcher`` (local mode): every server a new process, as before the pre-imported launcher
(``hub/spawners/launcher.py``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import RunningPlatform, free_port, free_ports, start_proxy, wait_for  # noqa: E402


def platform_env(args: argparse.Namespace) -> dict[str, str]:
    """The benchmarked platform's settings: no idle culling; ``--no-launcher`` starts every local server afresh."""
    # A loaded machine may take minutes for ten servers at once: the bench waits up to 600 s, so may the hub.
    env = {"POLARTEP_IDLE_TIMEOUT": "0", "POLARTEP_SPAWN_START_TIMEOUT": "600"}
    if args.no_launcher:
        env["POLARTEP_LOCAL_LAUNCHER"] = "0"
    return env


def start_platform(platform: RunningPlatform) -> RunningPlatform:
    """``platform.start()`` with a start-up allowance for a busy shared machine (the tests' 60 s is too short at
    a load average of 10)."""
    platform.proxy_process = start_proxy(platform.settings, log_path=platform.root / "proxy.log")
    platform.start_hub(timeout=240)
    platform.admin_token  # noqa: B018
    return platform


def by_hand(profile_env: dict[str, str], home: Path, poll: float = 0.05, port: int = 0) -> float:
    port = port or free_port()
    lab = Path(sys.executable).parent / "jupyter-lab"
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(lab), "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=bench", f"--ServerApp.root_dir={home}"],
        stdout=subprocess.DEVNULL, stderr=open(home / "lab.log", "ab"), env=profile_env, cwd=home,  # noqa: SIM115
    )  # fmt: skip

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/status?token=bench", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, 600, interval=poll, what="hand-started server")
    except TimeoutError:
        process.kill()
        raise TimeoutError(
            f"hand-started server on port {port}:\n{(home / 'lab.log').read_text()[-3000:]}"
        ) from None
    elapsed = time.perf_counter() - started
    process.terminate()
    try:
        process.wait(60)  # a loaded machine can take long to shut ten servers down
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return elapsed


def by_docker_run(
    profile_name: str,
    catalogue_path: str,
    volume: str,
    singleuser_env: dict[str, str] | None = None,
    poll: float = 0.05,
    port: int = 0,
) -> float:
    """A bare ``docker run`` of the profile's image to ready: ``jupyter lab``, or with ``singleuser_env`` the image's
    own command (``jupyterhub-singleuser``, talking to the running hub as the given user)."""
    from polartep_hub.catalogue import load_catalogue

    profile = load_catalogue(catalogue_path).profile(profile_name)
    port = port or free_port()
    name = f"polartep-bench-{secrets.token_hex(3)}"
    if singleuser_env is None:
        command = [
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ip=127.0.0.1",
            "--IdentityProvider.token=bench",
        ]
        env_args: list[str] = []
        probe = f"http://127.0.0.1:{port}/api/status?token=bench"
    else:
        prefix = singleuser_env["JUPYTERHUB_SERVICE_PREFIX"]
        env = {**singleuser_env, "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}{prefix}"}
        command = ["jupyterhub-singleuser", f"--port={port}", "--ip=127.0.0.1"]
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        probe = f"http://127.0.0.1:{port}{prefix}api"  # what the spawner polls too
    started = time.perf_counter()
    subprocess.run(
        ["docker", "run", "-d", "--rm", "--name", name, "--network", "host",
         f"--memory={profile.memory}", f"--memory-swap={profile.memory}",
         "--cpu-period=100000", f"--cpu-quota={int(profile.cpu * 100000)}",
         "-v", f"{volume}:/home/jovyan", *env_args, profile.image, *command],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip

    def up() -> bool:
        try:
            return httpx.get(probe, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 600, interval=poll, what="hand-started container")
    elapsed = time.perf_counter() - started
    subprocess.run(["docker", "stop", "-t", "10", name], check=True, stdout=subprocess.DEVNULL)
    return elapsed


def through_platform(
    platform: RunningPlatform, user: str, token: str, profile: str, poll: float = 0.05, stop: bool = True
) -> float:
    started = time.perf_counter()
    r = platform.api("POST", f"/hub/api/users/{user}/server", token, json={"profile": profile}, timeout=120)
    assert r.status_code in (201, 202), r.text

    def ready() -> bool:
        model = platform.server_model(user)
        return bool(model and model["ready"])

    wait_for(ready, 600, interval=poll, what="platform server")
    elapsed = time.perf_counter() - started
    if stop:
        platform.stop_server(user)
    return elapsed


def at_once(jobs: list) -> tuple[list[float], float]:
    """Run every job in its own thread, released together; their own durations and the spread of their ends."""
    barrier = threading.Barrier(len(jobs))
    times: list[float] = [0.0] * len(jobs)
    ends: list[float] = [0.0] * len(jobs)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            times[index] = jobs[index]()
            ends[index] = time.perf_counter()
        except BaseException as error:  # reported below, the bench fails
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return times, max(ends) - min(ends)


def concurrent_main(args: argparse.Namespace) -> None:
    """N users spawning at once against N bare boots at once (local mode: ``jupyter-lab`` processes; Docker mode:
    bare ``docker run`` containers of the profile's image, each with a volume of its own)."""
    poll = args.poll or 0.2
    runs = args.runs or 1
    docker = args.mode == "docker"
    # Docker volumes outlive a platform: names of their own per run.
    prefix = f"bench{secrets.token_hex(2)}u" if docker else "bench"
    users = [f"{prefix}{i}" for i in range(args.users)]
    hand_volumes = [f"polartep-home-{user}hand" for user in users]
    with tempfile.TemporaryDirectory() as tmp:
        platform = start_platform(RunningPlatform(Path(tmp), mode=args.mode, extra_env=platform_env(args)))
        try:
            tokens = {user: platform.create_user(user, plan="large") for user in users}
            homes = []
            for user in users:
                home = Path(tmp) / f"hand-{user}"
                home.mkdir()
                homes.append(home)
            env = {**platform.env}

            def bare(index: int, port: int = 0) -> float:
                if docker:
                    catalogue = platform.settings.catalogue_path
                    return by_docker_run(args.profile, catalogue, hand_volumes[index], poll=poll, port=port)
                return by_hand({**env, "HOME": str(homes[index])}, homes[index], poll, port)

            # Warm-up: one of each, so both sides start with a warm file cache and warm hub code paths.
            through_platform(platform, users[0], tokens[users[0]], args.profile, poll)
            bare(0)
            platform_times: list[float] = []
            hand_times: list[float] = []
            spreads: dict[str, list[float]] = {"platform": [], "by-hand": []}
            for _ in range(runs):
                jobs = [
                    (lambda u=u: through_platform(platform, u, tokens[u], args.profile, poll, stop=False))
                    for u in users
                ]
                times, spread = at_once(jobs)
                platform_times += times
                spreads["platform"].append(spread)
                for user in users:
                    platform.stop_server(user, timeout=120)
                ports = free_ports(
                    len(homes)
                )  # distinct ports: ten threads asking the kernel at once may clash
                jobs = [(lambda i=i, p=p: bare(i, p)) for i, p in enumerate(ports)]
                times, spread = at_once(jobs)
                hand_times += times
                spreads["by-hand"].append(spread)
        finally:
            if args.keep_log:
                Path(args.keep_log).write_text(platform.hub_log.read_text(errors="replace"))
            platform.stop()
            if docker:
                for volume in [*hand_volumes, *(f"polartep-home-{user}" for user in users)]:
                    subprocess.run(
                        ["docker", "volume", "rm", "-f", volume], stdout=subprocess.DEVNULL, check=False
                    )
    p, h = statistics.median(platform_times), statistics.median(hand_times)
    launcher = "" if docker else f", launcher {'off' if args.no_launcher else 'on'}"
    print(
        f"mode {args.mode}{launcher}, profile {args.profile}, {args.users} at once, {runs} round(s), poll {poll} s"
    )
    print(f"load average before/after: {args.load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"platform spawn-to-ready p50: {p:.3f} s  (min {min(platform_times):.3f}, max {max(platform_times):.3f}, "
        f"spread of the ready moments {max(spreads['platform']):.3f} s)"
    )
    print(
        f"by-hand boot-to-ready p50:   {h:.3f} s  (min {min(hand_times):.3f}, max {max(hand_times):.3f}, "
        f"spread of the ready moments {max(spreads['by-hand']):.3f} s)"
    )
    print(f"ratio platform/by-hand: {p / h:.2f}  (target <= 1.25)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="rounds (default 10; 1 with --users)")
    parser.add_argument("--users", type=int, default=1, help="users spawning at once")
    parser.add_argument(
        "--poll", type=float, default=0.0, help="poll interval (default 0.05; 0.2 with --users)"
    )
    parser.add_argument("--keep-log", default="", help="with --users: copy the hub's log to this file")
    parser.add_argument("--profile", default="interactive")
    parser.add_argument(
        "--no-launcher",
        action="store_true",
        help="local mode: start each server as a new process (POLARTEP_LOCAL_LAUNCHER=0), as before the launcher",
    )
    parser.add_argument("--mode", choices=["local", "docker"], default="local")
    parser.add_argument(
        "--baseline",
        choices=["lab", "singleuser"],
        default="lab",
        help="docker mode: the bare container runs `jupyter lab` (default) or the image's own jupyterhub-singleuser",
    )
    args = parser.parse_args()
    args.load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.users > 1:
        concurrent_main(args)
        return
    args.runs = args.runs or 10

    user = f"bench{secrets.token_hex(3)}" if args.mode == "docker" else "bench"
    hand_volume = f"polartep-home-{user}hand"
    with tempfile.TemporaryDirectory() as tmp:
        platform = RunningPlatform(Path(tmp), mode=args.mode, extra_env=platform_env(args)).start()
        try:
            token = platform.create_user(user, plan="large")
            home = Path(tmp) / "hand-home"
            home.mkdir()
            env = {**platform.env, "HOME": str(home)}

            singleuser_env = None
            if args.mode == "docker" and args.baseline == "singleuser":
                hand_user = f"{user}hand"
                hand_token = platform.create_user(hand_user, plan="large")
                singleuser_env = {
                    "JUPYTERHUB_API_URL": f"{platform.settings.hub_url}/hub/api",
                    "JUPYTERHUB_API_TOKEN": hand_token,
                    "JUPYTERHUB_USER": hand_user,
                    "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{hand_user}",
                    "JUPYTERHUB_SERVICE_PREFIX": f"/user/{hand_user}/",
                    "JUPYTERHUB_BASE_URL": "/",
                }

            def baseline() -> float:
                if args.mode == "docker":
                    return by_docker_run(
                        args.profile, platform.settings.catalogue_path, hand_volume, singleuser_env
                    )
                return by_hand(env, home)

            for _ in range(2):  # warm the file cache and the hub's code paths for both sides alike
                through_platform(platform, user, token, args.profile)
                baseline()
            platform_times, hand_times = [], []
            for _ in range(args.runs):  # interleaved so drift affects both alike
                platform_times.append(through_platform(platform, user, token, args.profile))
                hand_times.append(baseline())
        finally:
            platform.stop()
            if args.mode == "docker":
                for volume in (hand_volume, f"polartep-home-{user}"):
                    subprocess.run(
                        ["docker", "volume", "rm", "-f", volume], stdout=subprocess.DEVNULL, check=False
                    )

    p, h = statistics.median(platform_times), statistics.median(hand_times)
    baseline_name = f", baseline {args.baseline}" if args.mode == "docker" else ""
    launcher = f", launcher {'off' if args.no_launcher else 'on'}" if args.mode == "local" else ""
    print(f"mode {args.mode}{baseline_name}{launcher}, profile {args.profile}, {args.runs} runs each")
    print(f"load average before/after: {args.load_before} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"platform spawn-to-ready median: {p:.3f} s  (min {min(platform_times):.3f}, max {max(platform_times):.3f})"
    )
    print(
        f"by-hand boot-to-ready median:   {h:.3f} s  (min {min(hand_times):.3f}, max {max(hand_times):.3f})"
    )
    print(f"ratio platform/by-hand: {p / h:.2f}  (target <= 1.25)")


if __name__ == "__main__":
    main()
