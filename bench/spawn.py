"""Spawn-to-ready through the platform vs. booting the same single-user server by hand.

Platform: ``POST /hub/api/users/<u>/server`` with a profile, until the hub reports the server ready (the user can
reach it). Baseline, ``--mode local``: the same ``jupyterhub-singleuser`` program's server (``jupyter lab``, same
venv, same extensions, same profile environment) started by hand on a free port, until ``/api/status`` answers.
Baseline, ``--mode docker``: a bare ``docker run`` of the profile's image with the same limits, host network and a
home volume, running ``jupyter lab`` until ``/api/status`` answers. Both timed ``--runs`` times in one run,
interleaved, each a fresh process or container; prints the medians and their ratio. Target: ratio <= 1.25.

    .venv/bin/python bench/spawn.py [--mode local|docker] [--runs 10] [--profile interactive]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import RunningPlatform, free_port, wait_for  # noqa: E402


def by_hand(profile_env: dict[str, str], home: Path) -> float:
    port = free_port()
    lab = Path(sys.executable).parent / "jupyter-lab"
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(lab), "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=bench", f"--ServerApp.root_dir={home}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=profile_env, cwd=home,
    )  # fmt: skip

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/status?token=bench", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, interval=0.05, what="hand-started server")
    elapsed = time.perf_counter() - started
    process.terminate()
    process.wait(20)
    return elapsed


def by_docker_run(
    profile_name: str, catalogue_path: str, volume: str, singleuser_env: dict[str, str] | None = None
) -> float:
    """A bare ``docker run`` of the profile's image to ready: ``jupyter lab``, or with ``singleuser_env`` the image's
    own command (``jupyterhub-singleuser``, talking to the running hub as the given user)."""
    from polartep_hub.catalogue import load_catalogue

    profile = load_catalogue(catalogue_path).profile(profile_name)
    port = free_port()
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

    wait_for(up, 60, interval=0.05, what="hand-started container")
    elapsed = time.perf_counter() - started
    subprocess.run(["docker", "stop", "-t", "10", name], check=True, stdout=subprocess.DEVNULL)
    return elapsed


def through_platform(platform: RunningPlatform, user: str, token: str, profile: str) -> float:
    started = time.perf_counter()
    r = platform.api("POST", f"/hub/api/users/{user}/server", token, json={"profile": profile})
    assert r.status_code in (201, 202), r.text

    def ready() -> bool:
        model = platform.server_model(user)
        return bool(model and model["ready"])

    wait_for(ready, 90, interval=0.05, what="platform server")
    elapsed = time.perf_counter() - started
    platform.stop_server(user)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--profile", default="interactive")
    parser.add_argument("--mode", choices=["local", "docker"], default="local")
    parser.add_argument(
        "--baseline",
        choices=["lab", "singleuser"],
        default="lab",
        help="docker mode: the bare container runs `jupyter lab` (default) or the image's own jupyterhub-singleuser",
    )
    args = parser.parse_args()

    user = f"bench{secrets.token_hex(3)}" if args.mode == "docker" else "bench"
    hand_volume = f"polartep-home-{user}hand"
    with tempfile.TemporaryDirectory() as tmp:
        platform = RunningPlatform(
            Path(tmp), mode=args.mode, extra_env={"POLARTEP_IDLE_TIMEOUT": "0"}
        ).start()
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
    print(f"mode {args.mode}{baseline_name}, profile {args.profile}, {args.runs} runs each")
    print(
        f"platform spawn-to-ready median: {p:.3f} s  (min {min(platform_times):.3f}, max {max(platform_times):.3f})"
    )
    print(
        f"by-hand boot-to-ready median:   {h:.3f} s  (min {min(hand_times):.3f}, max {max(hand_times):.3f})"
    )
    print(f"ratio platform/by-hand: {p / h:.2f}  (target <= 1.25)")


if __name__ == "__main__":
    main()
