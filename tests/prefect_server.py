"""A real Prefect server for the tests: Prefect's own app, served by uvicorn in a
thread of the test process, on 127.0.0.1, with a SQLite database in a temporary
folder (`../shared/notes/prefect-api.md`: one in-process server per process).

Prefect reads its settings when it is first imported: `start` sets them, and makes
Prefect read them again if an earlier test imported it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

# Services the tests do not need, off; the event persister flushes often, so that
# what was emitted can be read back soon.
SETTINGS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
    # No backfill of the live stream: what a follower missed while down must come from
    # its own catch-up (from the engine's cursor), which is what the tests check.
    "PREFECT_SERVER_EVENTS_MAXIMUM_WEBSOCKET_BACKFILL": "PT0S",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running(home: Path) -> Iterator[str]:
    """A server for the block; its API URL (also set as PREFECT_API_URL for every
    process). It is stopped at the end, with its database connections: their threads,
    left to the interpreter's exit, can abort it (PyGILState_Release)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    home.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        SETTINGS,
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    )
    if "prefect" in sys.modules:  # imported by an earlier test: read the settings again
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()
    import uvicorn
    from prefect.server.api.server import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(final=True), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True, name="prefect-server")
    thread.start()
    try:
        _wait_healthy(url)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def late_proxy(target: str, after: float) -> str:
    """An address for `target` (an API URL on 127.0.0.1) that refuses connections for
    `after` seconds, then forwards them: a server that is down, then up."""
    host_port = target.split("//", 1)[1].split("/", 1)[0]
    upstream = int(host_port.rsplit(":", 1)[1])
    port = free_port()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def serve() -> None:
        time.sleep(after)
        listener = socket.create_server(("127.0.0.1", port))
        while True:
            client, _ = listener.accept()
            server = socket.create_connection(("127.0.0.1", upstream))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=pump, args=(source, sink), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return target.replace(f":{upstream}/", f":{port}/")
