"""Crash injection for tests: `GITOPS_INCIDENTS_CRASH=<point>` ends the process
abruptly (no cleanup, no flush: as a power cut or `kill -9` would) when it
reaches that point. The points are where a crash is most costly:

- `after-send`: an action's effect has left the process, its outcome is not recorded;
- `after-stage`: an action's edit is staged in the checked-out branch, which has not moved;
- `after-commit`: an action's commit is on the branch, its outcome is not recorded;
- `before-state`: history was evaluated, the new position is not recorded.
"""

from __future__ import annotations

import os

CRASH_EXIT = 70
POINTS = ("after-send", "after-stage", "after-commit", "before-state")


def crashpoint(point: str) -> None:
    assert point in POINTS
    if os.environ.get("GITOPS_INCIDENTS_CRASH") == point:
        os._exit(CRASH_EXIT)
