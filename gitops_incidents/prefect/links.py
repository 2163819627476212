"""Pages of the Prefect UI for the resources an incident links (`prefect.ui_url`, or
Prefect Cloud's account and workspace). Routes as Prefect's own UI defines them
(prefect/server/ui, 3.x); a work pool's page is named by the pool's name, the rest
by id. Plain strings: no Prefect package is needed.
"""

from __future__ import annotations

from urllib.parse import quote

from gitops_incidents.models import PrefectConfig

CLOUD = "https://app.prefect.cloud"
# A resource id's kind (prefect.<kind>.<id>) -> its page below the UI's root.
_ROUTES = {
    "flow-run": "runs/flow-run/{}",
    "task-run": "runs/task-run/{}",
    "deployment": "deployments/deployment/{}",
    "flow": "flows/flow/{}",
    "work-pool": "work-pools/work-pool/{}",
    "work-queue": "work-queues/work-queue/{}",
    "automation": "automations/automation/{}",
}


def ui_root(config: PrefectConfig) -> str | None:
    if config.ui_url:
        return config.ui_url.rstrip("/")
    if config.cloud_account and config.cloud_workspace:
        return f"{CLOUD}/account/{config.cloud_account}/workspace/{config.cloud_workspace}"
    return None


def kind_and_id(resource_id: str) -> tuple[str, str] | None:
    """(`work-pool`, `<uuid>`) of `prefect.work-pool.<uuid>`; None for a resource that
    is not one of Prefect's objects."""
    prefix, kind, ident = [*resource_id.split(".", 2), "", ""][:3]
    return (kind, ident) if prefix == "prefect" and kind and ident else None


def resource_url(root: str | None, resource_id: str, name: str = "") -> str | None:
    """The UI's page of `resource_id` (`prefect.work-pool.<uuid>` ...), None if it has
    none or no UI is configured."""
    parsed = kind_and_id(resource_id)
    route = _ROUTES.get(parsed[0]) if parsed else None
    if root is None or parsed is None or route is None:
        return None
    kind, ident = parsed
    # A work pool's page takes its name; a resource id names it by UUID.
    key = name if kind == "work-pool" and name else ident
    return f"{root}/{route.format(quote(key, safe=''))}"
