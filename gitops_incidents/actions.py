"""Action executors (SPEC 5.3): where side effects live.

Each executor takes one invocation of one action and returns what it did, or
raises `ActionFailed` (for good) or `Transient` (worth another try). Commit
actions edit files with the round-trip writer and publish by compare-and-swap
on the branch: a human commit that lands meanwhile is kept, and the edit is
made again on top of it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_incidents import gitcmd, incident_writer, models, tracker, yamlio
from gitops_incidents.events import IncidentState
from gitops_incidents.faults import crashpoint
from gitops_incidents.models import Automation, Config, Context
from gitops_incidents.validation import parse_file

if TYPE_CHECKING:
    import httpx

TIMEOUT = 10.0  # seconds, for each step of a request
ATTEMPTS = 3  # tries of a transient failure within one run
# The resource kind each sourced action acts on; `<ns>` is the tracker's namespace.
KINDS = {
    "incident_id": "<ns>.incident",
    "automation_id": "prefect.automation",
    "work_pool_id": "prefect.work-pool",
    "work_queue_id": "prefect.work-queue",
    "deployment_id": "prefect.deployment",
}


class ActionFailed(Exception):
    """The action cannot succeed as it stands: recorded as failed, with this reason."""


class Transient(ActionFailed):
    """Worth another try: a connection error, a timeout, HTTP 429 or 5xx."""


def retry_delay() -> float:
    """The first backoff delay, in seconds (doubling after); tests shorten it."""
    try:
        return max(float(os.environ.get("GITOPS_INCIDENTS_RETRY_DELAY", "1")), 0.0)
    except ValueError:
        return 1.0


@dataclass(frozen=True)
class Call:
    """Everything one invocation needs."""

    root: Path
    branch_ref: str
    config: Config
    key: str
    automation_id: str
    automation: Automation
    action: Any  # one of models.Action
    firing: dict[str, Any]  # id, state, triggered, labels
    event: dict[str, Any] | None
    incidents: Mapping[str, IncidentState]
    recovering: bool  # an earlier attempt may have had its effect: look before acting
    # A commit action's edit, staged in the checked-out working tree before the branch
    # moves ({"path", "blob"}): recorded first, so that a restart knows it.
    intent: dict[str, str] | None = None
    note_intent: Callable[[dict[str, str]], None] | None = None
    # How a commit action's commit lands, if not by compare-and-swap of the local
    # branch: (commit, tip) -> False if the branch moved meanwhile. The daemon's, with a
    # remote, pushes the commit there together with the ledger's record of it.
    move_branch: Callable[[str, str], bool] | None = None


@dataclass(frozen=True)
class ActionType:
    """One action type, in one place: how it runs, how `plan` says what it would do
    (without doing it), and whether its sink takes a second delivery as the first (so a
    run that stopped midway runs it again, instead of reporting it unknown)."""

    run: Callable[[Call], str]
    describe: Callable[[Call], str]
    idempotent: bool


def registry() -> dict[str, ActionType]:
    """Every action type; Prefect's come from the Prefect subpackage (which imports
    prefect-client only when one runs)."""
    from gitops_incidents.prefect.actions import ACTIONS as PREFECT_ACTIONS

    return {**ACTIONS, **PREFECT_ACTIONS}


def execute(call: Call) -> str:
    """Run the action, retrying transient failures with backoff; what it did."""
    delay, attempt = retry_delay(), 1
    run = registry()[call.action.type].run
    while True:
        try:
            return run(call)
        except Transient as exc:
            if attempt == ATTEMPTS:
                raise ActionFailed(f"{exc} (after {ATTEMPTS} attempts)") from None
        time.sleep(delay)
        delay, attempt = delay * 2, attempt + 1


# -- templates -------------------------------------------------------------------------


class _Resource(dict[str, str]):
    """A Prefect resource in templates: `resource.id`, `.name`, `.role`, or any label,
    also as Jinja walks a dotted name: `selectattr('prefect.resource.role', ...)` and
    `map(attribute='prefect.resource.id')` find the labels so named."""

    def __missing__(self, key: str) -> Any:
        return _LabelPath(self, key)

    @property
    def id(self) -> str:
        return self.get("prefect.resource.id", "")

    @property
    def name(self) -> str | None:
        return self.get("prefect.resource.name")

    @property
    def role(self) -> str | None:
        return self.get("prefect.resource.role")


class _LabelPath:
    """The first parts of a dotted label name, as Jinja looks it up part by part."""

    def __init__(self, labels: dict[str, str], prefix: str) -> None:
        if not any(label.startswith(f"{prefix}.") for label in labels):
            raise KeyError(prefix)  # no such label: Jinja makes it undefined
        self._labels, self._prefix = labels, prefix

    def __getitem__(self, part: str) -> Any:
        name = f"{self._prefix}.{part}"
        return self._labels[name] if name in self._labels else _LabelPath(self._labels, name)


class _EventView(dict[str, Any]):
    """`event` in templates: the event itself (so `event | tojson` is the event), with
    the attributes of Prefect's ReceivedEvent (`event.resource.id`, `event.payload`)."""

    @property
    def id(self) -> str:
        return str(self.get("id", ""))

    @property
    def event(self) -> str:
        return str(self.get("event", ""))

    @property
    def occurred(self) -> str:
        return str(self.get("occurred", ""))

    @property
    def resource(self) -> _Resource:
        return _Resource(self.get("resource") or {})

    @property
    def related(self) -> list[_Resource]:
        return [_Resource(r) for r in self.get("related") or ()]

    @property
    def payload(self) -> dict[str, Any]:
        return dict(self.get("payload") or {})

    def resource_in_role(self, role: str) -> _Resource | None:
        return next((r for r in self.related if r.role == role), None)


def template_context(call: Call) -> dict[str, Any]:
    view = _EventView(call.event) if call.event is not None else None
    incident = _incident_for(call)
    return {
        "automation": {
            "id": call.automation_id,
            "name": call.automation.name,
            "description": call.automation.description,
        },
        "event": view,
        "labels": call.firing.get("labels", {}),
        "firing": call.firing,
        "incident": _incident_view(incident) if incident else None,
    }


def render(template: str, call: Call) -> str:
    # Jinja and httpx are imported where they are used: an apply that fires nothing
    # (most of them) starts without them.
    from jinja2 import TemplateError as JinjaError

    from gitops_incidents import templates

    try:
        return templates.render(templates.compile_template(template), template_context(call))
    except (JinjaError, ArithmeticError, TypeError, ValueError, LookupError, RuntimeError) as exc:
        raise ActionFailed(f"template failed at render time: {exc}") from None


def _incident_view(state: IncidentState) -> dict[str, Any]:
    document = state.document or {}
    return {
        **document,
        "id": state.id,
        "number": state.number,
        "path": state.path,
        "start_time": state.start_time,
        "end_time": state.end_time,
        "comments": state.comments,
        "deleted": state.document is None,
    }


def _incident_for(call: Call) -> IncidentState | None:
    """The incident an action is about: its selected or inferred one, else the one
    the triggering event names, if any."""
    incident_id = getattr(call.action, "incident_id", None)
    if incident_id is None:
        resource = infer(call, "incident_id", required=False)
        incident_id = resource.split(".incident.", 1)[1] if resource else None
    return call.incidents.get(incident_id) if incident_id else None


def _kind(call: Call, field: str) -> str:
    """The resource kind of an action's target, as a prefix: `prefect.work-pool.`."""
    return KINDS[field].replace("<ns>", call.config.namespace) + "."


def infer(call: Call, field: str, *, required: bool = True) -> str | None:
    """`source: inferred`: the first of the event's [resource, *related] of the kind."""
    kind = _kind(call, field)
    event = call.event or {}
    for resource in [event.get("resource") or {}, *(event.get("related") or ())]:
        resource_id = resource.get("prefect.resource.id", "")
        if resource_id.startswith(kind) and len(resource_id) > len(kind):
            return str(resource_id)
    if required:
        raise ActionFailed(f"source is inferred, but the triggering event names no {kind}*")
    return None


def _target_id(call: Call, field: str) -> str:
    selected = getattr(call.action, field)
    if selected is not None:
        return str(selected)
    inferred = infer(call, field)
    assert inferred is not None
    return inferred.removeprefix(_kind(call, field))


# -- HTTP ---------------------------------------------------------------------------------


def _env_url(name: str) -> str:
    url = os.environ.get(name)
    if not url:
        raise ActionFailed(f"environment variable {name} is not set")
    return url


@functools.cache
def _client() -> httpx.Client:
    """One client a process: its TLS context is built once (25 ms each), and the
    daemon's requests to one host reuse a connection."""
    import httpx

    return httpx.Client(timeout=TIMEOUT)


def _post(call: Call, url: str, body: str | bytes, headers: dict[str, str]) -> str:
    import httpx

    try:
        response = _client().post(url, content=body, headers=headers)
    except httpx.UnsupportedProtocol:
        raise ActionFailed(f"not an http(s) URL: {_redacted(url)}") from None
    except httpx.TransportError as exc:
        raise Transient(f"POST {_redacted(url)}: {type(exc).__name__}: {exc}") from None
    except httpx.InvalidURL as exc:
        raise ActionFailed(f"invalid URL: {exc}") from None
    crashpoint("after-send")
    status = response.status_code
    if status == 429 or status >= 500 or status == 408:
        raise Transient(f"POST {_redacted(url)}: HTTP {status}")
    if status >= 400:
        raise ActionFailed(f"POST {_redacted(url)}: HTTP {status}: {response.text[:200]}")
    return f"HTTP {status}"


def _redacted(url: str) -> str:
    """A URL without its path and query: webhook URLs carry their secret there."""
    import httpx

    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}{f':{parsed.port}' if parsed.port else ''}/…"


def _json_or_text(text: str) -> tuple[bytes, str]:
    try:
        json.loads(text)
    except ValueError:
        return text.encode(), "text/plain; charset=utf-8"
    return text.encode(), "application/json"


def call_webhook(call: Call) -> str:
    action: models.CallWebhook = call.action
    headers = {}
    if action.target is not None:
        webhook = call.config.webhooks[action.target]
        url = _env_url(webhook.url_env)
        headers.update(webhook.headers)
    else:
        assert action.url is not None
        url = action.url
    body, content_type = _json_or_text(render(action.payload, call))
    headers.update(action.headers)
    headers.update({"Content-Type": content_type, "Idempotency-Key": call.key})
    return _post(call, url, body, headers)


def send_notification(call: Call) -> str:
    action: models.SendNotification = call.action
    notifier = call.config.notifiers[action.target]
    url = _env_url(notifier.url_env)
    subject, body = render(action.subject, call), render(action.body, call)
    if notifier.kind == "apprise":
        return _apprise(url, subject, body)
    message: dict[str, Any]
    if notifier.kind == "slack":
        message = {"text": f"*{subject}*\n{body}"}
    elif notifier.kind == "teams":
        message = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": subject,
            "title": subject,
            "text": body,
        }
    else:
        message = {"subject": subject, "body": body, "key": call.key}
    headers = {"Content-Type": "application/json", "Idempotency-Key": call.key}
    return _post(call, url, json.dumps(message), headers)


def _apprise(url: str, subject: str, body: str) -> str:
    try:
        import apprise  # type: ignore[import-untyped,unused-ignore]  # optional extra
    except ImportError:
        raise ActionFailed(
            "an apprise notifier needs the optional extra: pip install 'gitops-incidents[apprise]'"
        ) from None
    sender = apprise.Apprise()
    if not sender.add(url):
        raise ActionFailed("Apprise does not accept the URL in the notifier's variable")
    if not sender.notify(title=subject, body=body):
        raise Transient("Apprise could not deliver the notification")
    crashpoint("after-send")
    return "sent through Apprise"


def do_nothing(call: Call) -> str:
    return "recorded"


# -- commits ------------------------------------------------------------------------------


def _bot_env(config: Config) -> dict[str, str]:
    name, email = config.bot.name, config.bot.email
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def publish(
    call: Call, path: str, edit: Callable[[bytes | None], bytes | None], subject: str
) -> str:
    """Commit `edit` of `path` on the branch as the bot, with the action trailer, by
    compare-and-swap; if the branch moved meanwhile, edit its new tip instead.

    Where the branch is checked out, the edit is staged in its index and working tree
    first, and the branch moves after (git's own order in `git commit`): a crash in
    between leaves the edit staged, so a person's next commit carries it and never
    reverts it; the restart then finds it on the branch (`intent`) and adds nothing."""
    root = call.root
    trailer = f"{gitcmd.ACTION_TRAILER}: {call.key}"
    message = f"{subject}\n\nAutomation: {call.automation.name}\n\n{trailer}\n"
    while True:
        tip = gitcmd.ref_value(root, call.branch_ref)
        if tip is None:
            raise ActionFailed(f"the branch {call.branch_ref} does not exist")
        if call.recovering:
            done = _committed(root, tip, call.key) or _landed(root, tip, call.intent)
            if done:
                return f"committed {done[:12]} (found after a restart)"
        old = gitcmd.read_blob(root, tip, path)
        new = edit(old)
        if new is None or new == old:
            return "nothing to change"
        commit = gitcmd.commit_tree(root, tip, {path: new}, message, env=_bot_env(call.config))
        intent = {"path": path, "blob": gitcmd.run(root, "rev-parse", f"{commit}:{path}").strip()}
        checked_out = gitcmd.checked_out(root, call.branch_ref)
        if checked_out:
            if call.note_intent is not None:
                call.note_intent(intent)
            if not gitcmd.move_files(root, tip, commit):
                if gitcmd.ref_value(root, call.branch_ref) != tip:
                    continue  # a commit landed meanwhile: edit its tip instead
                raise ActionFailed(
                    f"{path} has changes in the checked-out working tree that are not "
                    "committed: commit or stash them, then run again (the edit was not made, "
                    "so that committing them cannot undo it)"
                )
            crashpoint("after-stage")
        move = call.move_branch or functools.partial(gitcmd.update_ref, root, call.branch_ref)
        if move(commit, tip):
            crashpoint("after-commit")
            return f"committed {commit[:12]}"
        if checked_out:
            moved = gitcmd.ref_value(root, call.branch_ref) or tip
            landed = _landed(root, moved, intent)
            if landed:  # a person committed the staged edit meanwhile
                return f"committed {landed[:12]} (with a commit made meanwhile)"
            _unstage(root, path, tip, intent["blob"])


def _unstage(root: Path, path: str, tip: str, blob: str) -> None:
    """Undo `_stage` after a lost race, where the staged edit is still as it was."""
    staged = gitcmd.run(root, "ls-files", "-s", "--", path).split()
    if len(staged) < 2 or staged[1] != blob:
        return
    if gitcmd.read_blob(root, tip, path) is None:
        gitcmd.run(root, "rm", "-q", "-f", "--", path)
    else:
        gitcmd.run(root, "checkout", tip, "--", path)


def _landed(root: Path, tip: str, intent: dict[str, str] | None) -> str | None:
    """The commit that put the intended version of the file on the branch, if it is there."""
    if intent is None:
        return None
    try:
        current = gitcmd.run(root, "rev-parse", f"{tip}:{intent['path']}").strip()
    except gitcmd.GitError:
        return None
    if current != intent["blob"]:
        return None
    return gitcmd.run(root, "log", "-1", "--format=%H", tip, "--", intent["path"]).strip()


def _committed(root: Path, tip: str, key: str) -> str | None:
    """The commit on the branch that carries the trailer of `key`, if any."""
    log = gitcmd.run(
        root, "log", "--fixed-strings", f"--grep={gitcmd.ACTION_TRAILER}: {key}",
        f"--format=%H%x1f%(trailers:key={gitcmd.ACTION_TRAILER},valueonly,separator=%x20)",
        tip,
    )  # fmt: skip
    for line in log.splitlines():
        commit, _, keys = line.partition("\x1f")
        if key in keys.split():  # the grep matches prefixes too: a/f/1 in a/f/10
            return commit
    return None


def _check(path: str, data: bytes, model: type[Any], config: Config) -> bytes:
    """Refuse to commit a file that would not validate."""
    _, findings = parse_file(path, data, model, Context(config, tracker.file_id(path)))
    if findings:
        raise ActionFailed(f"the edit would make the file invalid: {findings[0]}")
    return data


def _edit_yaml(
    path: str, model: type[Any], config: Config, change: incident_writer.Change
) -> Callable[[bytes | None], bytes | None]:
    """An edit of a YAML (or JSON) file that keeps its comments and layout."""

    def edit(old: bytes | None) -> bytes | None:
        if old is None:
            raise ActionFailed(f"{path} does not exist on the branch")
        try:
            new = incident_writer.edit_text(path, yamlio.decode(old), change)
        except (yamlio.LoadError, ValueError) as exc:
            raise ActionFailed(f"{path} cannot be edited: {exc}") from None
        return old if new is None else _check(path, new.encode(), model, config)

    return edit


def _incident_path(call: Call) -> str:
    incident_id = _target_id(call, "incident_id")
    if tracker.id_problem(incident_id):
        raise ActionFailed(f"not an incident id: {incident_id!r}")
    return f"{tracker.INCIDENTS}/{incident_id}.yaml"


def _edit_incident(
    call: Call, change: incident_writer.Change, message: Callable[[str], str]
) -> str:
    path = _incident_path(call)
    edit = _edit_yaml(path, models.Incident, call.config, change)
    return publish(call, path, edit, message(tracker.file_id(path)))


def resolve_incident(call: Call) -> str:
    return _edit_incident(call, incident_writer.resolve(), "Resolve {}".format)


def reopen_incident(call: Call) -> str:
    return _edit_incident(call, incident_writer.reopen(), "Reopen {}".format)


def change_incident_severity(call: Call) -> str:
    severity = call.action.severity
    change = incident_writer.set_field("severity", severity)
    return _edit_incident(call, change, lambda incident: f"{incident}: severity {severity}")


def comment_on_incident(call: Call) -> str:
    action: models.CommentOnIncident = call.action
    text = render(action.text, call)
    if not text.strip():
        raise ActionFailed("the comment's text rendered empty")
    return _edit_incident(call, incident_writer.comment(text), "Comment on {}".format)


def _automation_action(enabled: bool) -> Callable[[Call], str]:
    def run(call: Call) -> str:
        automation_id = _target_id(call, "automation_id")
        tip = gitcmd.ref_value(call.root, call.branch_ref) or ""
        candidates = [
            f"{tracker.AUTOMATIONS}/{automation_id}{suffix}"
            for suffix in tracker.AUTOMATION_SUFFIXES
        ]
        path = next(
            (p for p in candidates if gitcmd.read_blob(call.root, tip, p) is not None), None
        )
        if path is None or tracker.id_problem(automation_id):
            raise ActionFailed(f"no automation {automation_id!r} on the branch")
        edit = _edit_yaml(
            path, Automation, call.config, incident_writer.set_field("enabled", enabled)
        )
        verb = "Resume" if enabled else "Pause"
        return publish(call, path, edit, f"{verb} automation {automation_id}")

    return run


def declare_incident(call: Call) -> str:
    action: models.DeclareIncident = call.action
    name = render(action.name, call).strip()
    if not name:
        raise ActionFailed("the incident's name rendered empty")
    incident_id = f"{incident_writer.slug(name)}-{call.firing['id'][:8]}"
    path = f"{tracker.INCIDENTS}/{incident_id}.yaml"
    text = incident_writer.new_incident(
        name=name,
        severity=action.severity,
        summary=render(action.summary, call),
        tags=action.tags,
        related=_related(call) if action.related == "inferred" else action.related,
        comment=f"Declared by the automation {call.automation.name!r} ({call.key}).",
    )

    def edit(old: bytes | None) -> bytes | None:
        if old is not None:
            return old  # declared already, by an earlier attempt
        return _check(path, text.encode(), models.Incident, call.config)

    return publish(call, path, edit, f"Declare {incident_id}: {name}")


def _related(call: Call) -> list[str]:
    """The triggering event's resources, except the git actor and commit and tags."""
    event = call.event or {}
    found: list[str] = []
    for resource in [event.get("resource") or {}, *(event.get("related") or ())]:
        resource_id = resource.get("prefect.resource.id", "")
        role = resource.get("prefect.resource.role")
        if role in ("actor", "commit", "tag") or resource_id.startswith("git."):
            continue
        if re.fullmatch(models.RESOURCE_ID_PATTERN, resource_id) and resource_id not in found:
            found.append(resource_id)
    return found


def target_text(call: Call) -> str:
    """`plan`'s words for what a sourced action acts on."""
    field = getattr(type(call.action), "id_field", None)
    return _target_id(call, field) if field else "the triggering flow run"


def verb_target(call: Call) -> str:
    """`resolve db-outage`, `pause k8s-prod`: the action's verb and its target."""
    return f"{call.action.type.split('-')[0]} {target_text(call)}"


def _describe_webhook(call: Call) -> str:
    action: models.CallWebhook = call.action
    return f"POST to {f'webhook {action.target}' if action.target else _redacted(action.url or '')}"


def _describe_severity(call: Call) -> str:
    return f"set the severity of {target_text(call)} to {call.action.severity}"


def _describe_comment(call: Call) -> str:
    return f"comment on {target_text(call)}: {render(call.action.text, call)[:80]!r}"


# A webhook receives the same Idempotency-Key; a commit is looked up by its trailer
# (and its staged edit) before it is made again. A notification cannot tell.
ACTIONS: dict[str, ActionType] = {
    "do-nothing": ActionType(do_nothing, lambda call: "record the firing", True),
    "call-webhook": ActionType(call_webhook, _describe_webhook, True),
    "send-notification": ActionType(
        send_notification,
        lambda call: f"notify {call.action.target}: {render(call.action.subject, call)}",
        False,
    ),
    "declare-incident": ActionType(
        declare_incident,
        lambda call: f"declare {render(call.action.name, call).strip()!r} ({call.action.severity})",
        True,
    ),
    "resolve-incident": ActionType(resolve_incident, verb_target, True),
    "reopen-incident": ActionType(reopen_incident, verb_target, True),
    "change-incident-severity": ActionType(change_incident_severity, _describe_severity, True),
    "comment-on-incident": ActionType(comment_on_incident, _describe_comment, True),
    "pause-automation": ActionType(_automation_action(False), verb_target, True),
    "resume-automation": ActionType(_automation_action(True), verb_target, True),
}


def describe(call: Call) -> str:
    """What running the action would do, worked out without doing it (for `plan`)."""
    try:
        return registry()[call.action.type].describe(call)
    except ActionFailed as exc:
        return f"would fail: {exc}"
