"""A connection to the Prefect API, and Prefect's errors as the engine's outcomes."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from gitops_incidents.actions import ActionFailed, Transient

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

EXTRA = "pip install 'gitops-incidents[prefect]'"


@contextlib.contextmanager
def connect(timeout: float | None = None) -> Iterator[SyncPrefectClient]:
    """The Prefect client of the user's profile (each request limited to `timeout`
    seconds, if given); its errors as ActionFailed (for good) or Transient (worth
    another try)."""
    configured()
    from prefect.client.orchestration import get_client

    try:
        settings = {"timeout": timeout} if timeout else None
        with get_client(httpx_settings=settings, sync_client=True) as client:
            yield client
    except ActionFailed:
        raise
    except Exception as exc:
        raise outcome(exc) from None


NO_API = (
    "no Prefect API to call: set PREFECT_API_URL (and PREFECT_API_KEY for Prefect Cloud), "
    "or select a Prefect profile that has them"
)


def configured() -> None:
    """Raise ActionFailed unless prefect-client is installed and an API is set."""
    if _nowhere_set():
        raise ActionFailed(NO_API)
    try:
        from prefect.settings import PREFECT_API_URL
    except ImportError:
        raise ActionFailed(f"calling Prefect needs the optional extra: {EXTRA}") from None
    if not PREFECT_API_URL.value():
        # Without one, prefect-client would start a throwaway server of its own.
        raise ActionFailed(NO_API)


def _nowhere_set() -> bool:
    """Whether no place Prefect 3 reads its settings from can hold an API URL: not
    the environment, a profiles file, nor a .env, prefect.toml or pyproject.toml here.
    Asking Prefect itself means importing it: a second, every build of a site."""
    if any(name.startswith("PREFECT_") for name in os.environ):
        return False
    home = Path("~/.prefect").expanduser()
    if (home / "profiles.toml").exists() or any(
        Path(name).exists() for name in (".env", "prefect.toml")
    ):
        return False
    project = Path("pyproject.toml")
    return not (project.exists() and "tool.prefect" in project.read_text(errors="replace"))


def outcome(exc: Exception) -> ActionFailed:
    """What a Prefect call's exception means for the action."""
    from prefect.exceptions import ObjectNotFound

    if isinstance(exc, ObjectNotFound):
        return ActionFailed(f"Prefect has no such object: {_detail(exc.http_exc)}")
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        reason = f"Prefect answered HTTP {status}: {_detail(exc)}"
        return Transient(reason) if status in (408, 429) or status >= 500 else ActionFailed(reason)
    if isinstance(exc, httpx.TransportError):
        return Transient(f"Prefect cannot be reached: {type(exc).__name__}: {exc}")
    return ActionFailed(f"calling Prefect failed: {type(exc).__name__}: {exc}")


def _detail(exc: Any) -> str:
    response = getattr(exc, "response", None)
    if response is None:
        return str(exc)
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.text[:200] or response.reason_phrase)
