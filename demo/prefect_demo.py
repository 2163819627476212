"""`make demo`'s Prefect part: a local Prefect server (SQLite, 127.0.0.1:4200) with the
work pools and deployments this repository's incidents name, and the repository's
history replayed through `apply` in a scratch clone (so this checkout gets no bot
commit and no engine ref), so that Prefect pauses and resumes them for real.

Writes `.venv/prefect/env` (PREFECT_API_URL=...) for the site's build to measure
impact. Without Prefect installed, or with the server not starting, it says so and
the demo goes on without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".venv" / "prefect"
PORT = 4200
URL = f"http://127.0.0.1:{PORT}/api"


def say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr)


def answering() -> bool:
    try:
        with urllib.request.urlopen(f"{URL}/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def start_server() -> bool:
    if answering():
        say(f"a Prefect server already answers at {URL}: using it")
        return True
    HOME.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(HOME), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    log = (HOME / "server.log").open("ab")
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen(
        [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(PORT)],
        env=env, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    (HOME / "server.pid").write_text(f"{server.pid}\n")
    say(f"starting a Prefect server at {URL} (log: {HOME / 'server.log'})")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if answering():
            return True
        if server.poll() is not None:
            break
        time.sleep(0.5)
    say("the Prefect server did not start: going on without Prefect")
    return False


def named_resources() -> tuple[set[str], set[str]]:
    """The work pools and deployments the example incidents name."""
    from gitops_incidents.models import Context, Incident
    from gitops_incidents.validation import parse_file

    named: dict[str, set[str]] = {"work-pool": set(), "deployment": set()}
    for path in sorted((ROOT / "incidents").glob("*.yaml")):
        incident, _ = parse_file(path.name, path.read_bytes(), Incident, Context())
        for resource in incident.related_resources if incident else []:
            kind, _, name = resource.id.removeprefix("prefect.").partition(".")
            named.get(kind, set()).add(name)
    return named["work-pool"], named["deployment"]


def create(pools: set[str], deployments: set[str]) -> None:
    api = httpx.Client(base_url=URL, timeout=30)
    for pool in sorted(pools):
        api.post("/work_pools/", json={"name": pool, "type": "process"})  # 409: there already
    flow = api.post("/flows/", json={"name": "demo-flow"}).json()
    for name in sorted(deployments):
        api.post(
            "/deployments/",
            json={"name": name, "flow_id": flow["id"], "work_pool_name": sorted(pools)[0]},
        )
    say(f"Prefect has the work pools {', '.join(sorted(pools))} and the deployments "
        f"{', '.join(sorted(deployments))}")  # fmt: skip


def replay() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="gitops-incidents-demo-"))
    subprocess.run(["git", "clone", "-q", str(ROOT), str(scratch)], check=True)
    say(f"replaying this repository's history through apply, in a scratch clone ({scratch})")
    env = {**os.environ, "PREFECT_API_URL": URL, "GITOPS_INCIDENTS_RETRY_DELAY": "0.1"}
    result = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "--repo", str(scratch), "apply", "--replay"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    for line in result.stderr.splitlines():
        if "work-pool" in line or "deployment" in line or line.startswith("fired"):
            print(f"  {line.strip()}", file=sys.stderr)


def main() -> int:
    try:
        import prefect.client.orchestration  # noqa: F401
    except ImportError:
        say("Prefect is not installed (pip install 'gitops-incidents[prefect]'): going on")
        return 0
    (HOME / "env").unlink(missing_ok=True)
    if not start_server():
        return 0
    create(*named_resources())
    replay()
    api = httpx.Client(base_url=URL, timeout=30)
    for pool in api.post("/work_pools/filter", json={}).json():
        state = "paused" if pool["is_paused"] else "not paused"
        say(f"work pool {pool['name']}: {state} in Prefect")
    HOME.mkdir(parents=True, exist_ok=True)
    (HOME / "env").write_text(f"PREFECT_API_URL={URL}\n")
    say(f"see it in Prefect's own UI: http://127.0.0.1:{PORT}/work-pools "
        f"(stop the server: kill $(cat {HOME / 'server.pid'}))")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
