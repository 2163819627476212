"""The event bridge both ways. Out: derived events published to the Prefect server's
events API (`prefect.emit_events`), so that automations defined inside Prefect react
to incidents kept in git. In: Prefect's stored events read from a cursor, and its
live stream followed (`ingest --from-prefect`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gitops_incidents.actions import ActionFailed
from gitops_incidents.events import Event
from gitops_incidents.prefect.client import connect

BATCH = 200  # events a request


def publish(events: Iterable[Event]) -> int:
    """POST the events, in order, to Prefect's `/events`; how many. Raises ActionFailed
    (or Transient) with Prefect's reason.

    Prefect holds an event whose `follows` names one it has not seen (for minutes), so
    `follows` is sent only where its leader goes in the same request: what came before
    arrived before anyway."""
    sent = 0
    with connect() as client:
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.append(event)
            if len(batch) == BATCH:
                sent += _post(client, batch)
                batch = []
        if batch:
            sent += _post(client, batch)
    return sent


def _post(client: Any, batch: list[dict[str, Any]]) -> int:
    ids = set()
    body = []
    for event in batch:
        sent = dict(event)
        if sent.get("follows") not in ids:
            sent.pop("follows", None)
        ids.add(event["id"])
        body.append(sent)
    response = client.request("POST", "/events", json=body)
    if response.status_code >= 300:
        raise ActionFailed(f"Prefect refused the events: HTTP {response.status_code}")
    return len(body)


# -- in: Prefect's events, from a cursor -------------------------------------------------


def read(since: float, until: float) -> Iterator[Event]:
    """Prefect's stored events that occurred in [since, until], oldest first (as Prefect
    pages them), as plain JSON events."""
    with connect() as client:
        from prefect.events.filters import EventFilter, EventOccurredFilter, EventOrder

        window = EventOccurredFilter(since=_moment(since), until=_moment(until))
        page = client.read_events(EventFilter(occurred=window, order=EventOrder.ASC), limit=50)
        while True:
            for event in page.events:
                yield event.model_dump(mode="json", exclude={"received"})
            if not page.next_page:
                return
            page = client.read_events_page(str(page.next_page))


def _moment(seconds: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC)


def follow(
    take: Callable[[list[Event]], None],
    batch_seconds: float = 1.0,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Prefect's live event stream (its websocket), handed to `take` in small batches (at
    most `batch_seconds` old), until `stopped()` (asked at least every second) or the
    process is stopped. Raises ActionFailed when the stream is lost for good (the client
    reconnects by itself before that)."""
    import asyncio

    from gitops_incidents.prefect.client import configured

    configured()  # the extra and an API, or one clear line

    async def stream() -> None:
        from prefect.events.clients import get_events_subscriber

        async with get_events_subscriber() as subscriber:
            events = aiter(subscriber)
            batch: list[Event] = []
            while not stopped():
                wait = batch_seconds if batch else 1.0
                try:
                    event = await asyncio.wait_for(anext(events), timeout=wait)
                except TimeoutError:
                    if batch:
                        take(batch)
                    batch = []
                    continue
                batch.append(event.model_dump(mode="json", exclude={"received"}))
                if len(batch) >= BATCH:
                    take(batch)
                    batch = []

    try:
        asyncio.run(stream())
    except (OSError, RuntimeError, ValueError) as exc:  # websockets' errors, after retries
        raise ActionFailed(f"Prefect's event stream is lost: {type(exc).__name__}: {exc}") from None
