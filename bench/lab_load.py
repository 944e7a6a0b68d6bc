"""JupyterLab's first load in Chromium with the Polar TEP extension vs. without it (issue 10; target ratio <= 1.05).

One local-mode platform, two users on the same profile and the same installation: ``labwith`` runs JupyterLab as
installed (extension enabled), ``labwithout`` has both parts disabled in its own Jupyter config
(``~/.jupyter/jupyter_server_config.json``: ``polartep_lab`` off; ``~/.jupyter/labconfig/page_config.json``:
``polartep-lab`` in ``disabledExtensions``, what ``jupyter labextension disable`` writes), which the bench checks
(``polartep/api/me`` answers 404 for that server and its JupyterLab has no Polar TEP panel).

A run is one first load: a fresh headless Chromium (empty profile, so nothing is cached) logs in through the hub's
form, then opens ``/user/<name>/lab``; the time is ``performance.now()`` when ``.jp-Launcher`` enters the page (a
MutationObserver installed before any page script), i.e. from navigation start, with the OAuth redirects to the
user's server included, until the launcher is shown. Runs alternate with/without (the order flips every round)
after one warm-up each; medians and their ratio are printed, and the load average before and after, because the
machine is shared. The last line states the ratio and the target.

    .venv/bin/python bench/lab_load.py [--rounds 5] [--profile interactive]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from polartep_hub.spawners.system_users import home_for, system_user_name

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import RunningPlatform  # noqa: E402
from tests.helpers.browser import browser_problem, login, new_driver, wait_until  # noqa: E402
from tests.helpers.jupyterlab import wait_for_launcher  # noqa: E402

PASSWORD = "lab-load-bench-pw-1"
TARGET = 1.05
# Records when JupyterLab's launcher first enters the DOM, relative to the navigation's start.
OBSERVER = """
(() => {
  const seen = () => {
    if (window.__launcherAt === undefined && document.querySelector('.jp-Launcher')) {
      window.__launcherAt = performance.now();
    }
    return window.__launcherAt !== undefined;
  };
  new MutationObserver((_, observer) => { if (seen()) observer.disconnect(); })
    .observe(document, {childList: true, subtree: true});
})();
"""


class BenchPlatform(RunningPlatform):
    """The test harness's platform, with more time for the hub to start on a loaded, shared machine."""

    def start_hub(self, timeout: float = 240) -> None:
        super().start_hub(timeout)


def disable_extension(home: Path) -> None:
    """Switch both parts off in the user's own Jupyter config, as the user could."""
    config = home / ".jupyter"
    (config / "labconfig").mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"polartep_lab": False}}})
    )
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"polartep-lab": True}})
    )
    owner = home.stat()
    for path in (config, config / "labconfig", *config.rglob("*")):
        os.chown(path, owner.st_uid, owner.st_gid)


def first_load(platform: RunningPlatform, user: str) -> tuple[float, bool]:
    """Seconds from navigation start to the launcher in a fresh browser, and whether the Polar TEP tab is there."""
    from selenium.webdriver.common.by import By

    profile = tempfile.mkdtemp(prefix="polartep-labload-")
    driver = new_driver(profile)
    try:
        login(driver, platform, user, PASSWORD, next_path="/hub/home")
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
        driver.get(f"{platform.url}/user/{user}/lab")
        wait_for_launcher(driver)
        launcher_ms = wait_until(driver, lambda d: d.execute_script("return window.__launcherAt"), timeout=30)
        has_panel = bool(driver.find_elements(By.CSS_SELECTOR, "li.lm-TabBar-tab[data-id='polartep-panel']"))
        return launcher_ms / 1000, has_panel
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured runs of each variant (default 5)")
    parser.add_argument("--profile", default="interactive")
    args = parser.parse_args()
    problem = browser_problem()
    if problem:
        print(f"lab_load: cannot run: {problem}", file=sys.stderr)
        return 2

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="polartep-labload-") as root:
        with BenchPlatform(Path(root)).running() as platform:
            users = {}
            for variant, name in (("with", "labwith"), ("without", "labwithout")):
                token = platform.create_user(name, plan="standard", password=PASSWORD)
                platform.spawn(name, token, {"profile": args.profile})
                users[variant] = (name, token)
            # Switch the extension off for one server, then restart that server so it reads the config.
            name, token = users["without"]
            # The user's own home: a system user's in local mode as root (spawners/system_users.py).
            s = platform.settings
            disable_extension(home_for(system_user_name(name, s.system_user_prefix), s.homes_dir))
            platform.stop_server(name)
            platform.spawn(name, token, {"profile": args.profile})
            for variant, (name, token) in users.items():
                status = platform.api("GET", f"/user/{name}/polartep/api/me", token).status_code
                expected = 200 if variant == "with" else 404
                if status != expected:
                    raise SystemExit(f"{variant}: polartep/api/me answered {status}, expected {expected}")

            times: dict[str, list[float]] = {"with": [], "without": []}
            order = ["with", "without"]
            for round_number in range(args.rounds + 1):
                for variant in order:
                    seconds, has_panel = first_load(platform, users[variant][0])
                    if has_panel != (variant == "with"):
                        raise SystemExit(
                            f"{variant}: the Polar TEP panel is {'missing' if not has_panel else 'there'}"
                        )
                    label = "warm-up" if round_number == 0 else f"run {round_number}"
                    print(f"{label:8} {variant:8} {seconds:.3f} s", flush=True)
                    if round_number:
                        times[variant].append(seconds)
                order.reverse()
                time.sleep(0.5)

    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with_median = statistics.median(times["with"])
    without_median = statistics.median(times["without"])
    ratio = with_median / without_median
    print(
        f"first load to launcher: with extension median {with_median:.3f} s, without {without_median:.3f} s "
        f"({args.rounds} runs each); ratio {ratio:.3f} (target <= {TARGET}): {'met' if ratio <= TARGET else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
