from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gitops_incidents.cli import main

from .conftest import ROOT, Repo

GOOD_INCIDENT = "name: Outage\nseverity: SEV-2\n"
GOOD_AUTOMATION = (
    "name: a\ntrigger: {posture: Reactive, expect: [x]}\nactions: [{type: do-nothing}]\n"
)

# A bad-input corpus: each file, and the exact findings `validate` prints for it.
CORPUS: list[tuple[str, str | bytes, list[str]]] = [
    (
        "incidents/unknown-key.yaml",
        "name: x\nseverty: SEV-1\n",
        [
            "1:1: missing required key 'severity'",
            "2:1: unknown key 'severty' (did you mean 'severity'?)",
        ],
    ),
    (
        "incidents/wrong-types.yaml",
        "name: [x]\nseverity: SEV-1\ntags: prod\n",
        [
            "1:7: name: expected a string, not a list",
            "3:7: tags: expected a list, not a string",
        ],
    ),
    (
        "incidents/bad-severity.yaml",
        "name: x\nseverity: SEV-7\n",
        [
            "2:11: severity: unknown severity 'SEV-7'; the scale is SEV-1, SEV-2, SEV-3, SEV-4, SEV-5",
        ],
    ),
    (
        "incidents/bad-time.yaml",
        "name: x\nseverity: SEV-1\nstart_time: 2026-13-45T99:00:00Z\n",
        [
            "3:13: start_time: input should be a valid datetime or date, month value is outside "
            "expected range of 1-12",
        ],
    ),
    (
        "incidents/end-before-start.yaml",
        "name: x\nseverity: SEV-1\nstatus: resolved\nstart_time: 2026-11-27T10:00:00Z\n"
        "end_time: 2026-11-27T09:00:00Z\n",
        [
            "5:11: end_time: end_time is before start_time",
        ],
    ),
    (
        "incidents/id-mismatch.yaml",
        "id: something-else\nname: x\nseverity: SEV-1\n",
        [
            "1:5: id: id 'something-else' does not match the file name 'id-mismatch'",
        ],
    ),
    (
        "incidents/bad-comment.yaml",
        "name: x\nseverity: SEV-1\ncomments:\n  - text: hi\n    by: me\n",
        [
            "5:5: comments[0]: unknown key 'by'",
        ],
    ),
    (
        "incidents/syntax.yaml",
        "name: [x\nseverity: SEV-1\n",
        [
            "2:9: did not find expected ',' or ']' (while parsing a flow sequence)",
        ],
    ),
    (
        "incidents/alias-bomb.yaml",
        "a: &a [x, x]\nb: [*a, *a]\n",
        [
            "1:4: anchors and aliases are not allowed",
        ],
    ),
    (
        "incidents/duplicate.yaml",
        "name: x\nseverity: SEV-1\nname: y\n",
        ["3:1: duplicate key 'name'"],
    ),
    (
        "incidents/python-tag.yaml",
        "name: !!python/name:os.system x\nseverity: SEV-1\n",
        [
            "1:7: tag 'tag:yaml.org,2002:python/name:os.system' is not allowed",
        ],
    ),
    ("incidents/latin1.yaml", b"name: caf\xe9\nseverity: SEV-1\n", ["1:10: file is not UTF-8"]),
    ("incidents/empty.yaml", "", ["1:1: expected a mapping of keys to values; the file is empty"]),
    (
        "incidents/list.yaml",
        "- a\n",
        [
            "1:1: expected a mapping of keys to values; the file is a list",
        ],
    ),
    (
        "incidents/huge.yaml",
        b"name: " + b"x" * (3 * 1024 * 1024),
        [
            "1:1: file is 3.0 MiB; the limit is 1 MiB",
        ],
    ),
    (
        "incidents/-dash.yaml",
        GOOD_INCIDENT,
        [
            "1:1: invalid id '-dash': use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        ],
    ),
    ("incidents/a..b.yaml", GOOD_INCIDENT, ["1:1: invalid id 'a..b': '..' is not allowed"]),
    (
        "incidents/with space.yaml",
        GOOD_INCIDENT,
        [
            "1:1: invalid id 'with space': use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        ],
    ),
    (
        "incidents/<script>.yaml",
        GOOD_INCIDENT,
        [
            "1:1: invalid id '<script>': use 1 to 128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        ],
    ),
    ("incidents/notes.md", "# notes\n", ["1:1: an incident file is named <id>.yaml"]),
    ("incidents/wrong-suffix.yml", GOOD_INCIDENT, ["1:1: an incident file is named <id>.yaml"]),
    (
        "automations/bad-trigger.yaml",
        "name: a\ntrigger:\n  posture: Reactive\n  threshold: 5\nactions: [{type: do-nothing}]\n",
        [
            "3:3: trigger: a threshold above 1 needs a window: set within above 0",
        ],
    ),
    (
        "automations/bad-action.yaml",
        "name: a\ntrigger: {posture: Reactive}\nactions:\n  - type: pause-work-pool\n"
        "  - type: send-notification\n    target: oncall\n    body: '{{ oops'\n"
        "  - type: teleport\n",
        [
            "4:5: actions[0]: work_pool_id is required when source is 'selected'",
            "6:13: actions[1].target: unknown notifier 'oncall' (gitops-incidents.yaml: "
            "none are configured)",
            "7:11: actions[1].body: template syntax error: unexpected end of template, expected "
            "'end of print statement'. (template line 1)",
            "8:11: actions[2]: unknown type 'teleport'; expected one of 'do-nothing', "
            "'send-notification', 'call-webhook', 'declare-incident', 'resolve-incident', "
            "'reopen-incident', 'change-incident-severity', 'comment-on-incident', "
            "'pause-automation', 'resume-automation', 'pause-work-pool', 'resume-work-pool', "
            "'pause-work-queue', 'resume-work-queue', 'pause-deployment', 'resume-deployment', "
            "'run-deployment', 'cancel-flow-run', 'suspend-flow-run', 'resume-flow-run', "
            "'change-flow-run-state'",
        ],
    ),
    (
        "automations/bad.json",
        '{\n  "name": "a",\n  "trigger": {"posture": "Reactive"},\n}\n',
        [
            "4:1: invalid JSON: Expecting property name enclosed in double quotes",
        ],
    ),
    (
        "automations/dupe.json",
        '{"name": "a", "trigger": {"posture": "Reactive"}, "actions": [], "name": "b"}',
        [
            "1:66: duplicate key 'name'",
        ],
    ),
    (
        "automations/same-id.json",
        "{}",
        [
            "1:1: missing required key 'name'",
            "1:1: missing required key 'trigger'",
        ],
    ),
    (
        "automations/same-id.yaml",
        GOOD_AUTOMATION,
        [
            "1:1: id 'same-id' is used by automations/same-id.json too",
        ],
    ),
]


def write_corpus(repo: Repo) -> None:
    for relpath, content, _ in CORPUS:
        repo.write(relpath, content)


def expected_lines() -> list[str]:
    return sorted(f"{path}:{line}" for path, _, lines in CORPUS for line in lines)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_every_bad_input_is_reported_at_its_place(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    write_corpus(repo)
    status, out, err = run(capsys, "--repo", str(repo.path), "validate")
    assert status == 1
    assert out == ""
    lines = err.splitlines()
    assert sorted(lines[:-1]) == expected_lines()
    with_findings = sum(bool(found) for _, _, found in CORPUS)
    assert lines[-1] == (
        f"{len(expected_lines())} problem(s) in {with_findings} of {len(CORPUS)} file(s)"
    )


def test_json_format(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    write_corpus(repo)
    status, out, _ = run(capsys, "validate", "--repo", str(repo.path), "--format", "json")
    assert status == 1
    report = json.loads(out)
    assert report["files"] == len(CORPUS)
    assert report["errors"] == len(expected_lines())
    first = report["findings"][0]
    assert set(first) == {"path", "line", "column", "level", "message"}
    assert (
        sorted(f"{f['path']}:{f['line']}:{f['column']}: {f['message']}" for f in report["findings"])
        == expected_lines()
    )


def test_github_format_escapes_properties_and_data(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("incidents/a.yaml", "name: x\nseverity: '100%\nbad'\n")
    status, out, _ = run(capsys, "validate", "--repo", str(repo.path), "--format", "github")
    assert status == 1
    assert out == (
        "::error file=incidents/a.yaml,line=2,col=11,title=gitops-incidents::severity: "
        "unknown severity '100%25 bad'; the scale is SEV-1, SEV-2, SEV-3, SEV-4, SEV-5\n"
    )


def test_clean_repository_exits_zero(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("incidents/outage.yaml", GOOD_INCIDENT)
    repo.write("automations/a.yaml", GOOD_AUTOMATION)
    repo.write("incidents/.gitkeep", "")
    assert run(capsys, "--repo", str(repo.path), "validate") == (
        0,
        "",
        "2 file(s) checked, no problems\n",
    )


def test_configured_scale_and_notifiers_apply(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(
        "gitops-incidents.yaml",
        "severities: [{id: P1, label: Page}]\nnotifiers: {oncall: {kind: slack, url_env: X}}\n",
    )
    repo.write("incidents/a.yaml", "name: x\nseverity: P1\n")
    repo.write("incidents/b.yaml", "name: x\nseverity: SEV-1\n")
    repo.write(
        "automations/n.yaml",
        "name: n\ntrigger: {posture: Reactive}\n"
        "actions: [{type: send-notification, target: oncall, body: hi}]\n",
    )
    status, _, err = run(capsys, "--repo", str(repo.path), "validate")
    assert status == 1
    assert err.splitlines()[0] == (
        "incidents/b.yaml:2:11: severity: unknown severity 'SEV-1'; the scale is P1"
    )


def test_invalid_configuration_is_reported_and_defaults_apply(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("gitops-incidents.yaml", "namespace: prefect-cloud\nnotifers: {}\n")
    repo.write("incidents/a.yaml", GOOD_INCIDENT)
    status, _, err = run(capsys, "--repo", str(repo.path), "validate")
    assert status == 1
    assert err.splitlines()[0] == (
        "gitops-incidents.yaml:2:1: unknown key 'notifers' (did you mean 'notifiers'?)"
    )


def test_paths_select_files_and_folders(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("incidents/good.yaml", GOOD_INCIDENT)
    repo.write("incidents/bad.yaml", "name: x\n")
    repo.write("automations/a.yaml", GOOD_AUTOMATION)
    good = str(repo.path / "incidents/good.yaml")
    assert run(capsys, "--repo", str(repo.path), "validate", good)[0] == 0
    status, _, err = run(capsys, "--repo", str(repo.path), "validate", str(repo.path / "incidents"))
    assert status == 1
    assert err.endswith("1 problem(s) in 1 of 2 file(s)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate", "missing.yaml"], "missing.yaml: no such file or directory"),
        (["validate", "README.md"], "README.md: not an incident, automation or configuration file"),
        (["validate", "/"], "/: outside the repository"),
    ],
)
def test_usage_errors_exit_two(
    repo: Repo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    repo.write("README.md", "hello\n")
    monkeypatch.chdir(repo.path)
    status, out, err = run(capsys, *args)
    assert status == 2
    assert out == ""
    assert err.startswith(f"gitops-incidents: error: {message}")


def test_argparse_errors_exit_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "validate", "--format", "xml")[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys, "--repo", "/no/such/dir", "validate")[0] == 2


def test_repository_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "--repo", str(ROOT), "validate")
    assert (status, err.splitlines()[-1].endswith("no problems")) == (0, True)


def test_no_traceback_from_the_installed_command(repo: Repo) -> None:
    write_corpus(repo)
    result = subprocess.run(
        [sys.executable, "-m", "gitops_incidents", "validate"],
        cwd=repo.path / "incidents",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert sorted(result.stderr.splitlines()[:-1]) == expected_lines()


def test_folder_inside_incidents_is_reported(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.path / "incidents" / "nested.yaml").mkdir(parents=True)
    status, _, err = run(capsys, "--repo", str(repo.path), "validate")
    assert status == 1
    assert err.splitlines()[0] == (
        "incidents/nested.yaml:1:1: not a file: incident files sit directly in the folder"
    )


def test_schema_paths_in_examples_exist() -> None:
    for path in [*ROOT.glob("incidents/*.yaml"), *ROOT.glob("automations/*.y*ml")]:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        assert (path.parent / first.split("=", 1)[1]).resolve().is_file()


def test_a_renamed_incident_is_a_warning(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("incidents/old-name.yaml", GOOD_INCIDENT)
    repo.commit("declare")
    repo.git("mv", "incidents/old-name.yaml", "incidents/new-name.yaml")
    status, _, err = run(capsys, "--repo", str(repo.path), "validate")
    assert status == 0  # a warning is not a failure
    assert err.splitlines()[0] == (
        "incidents/new-name.yaml:1:1: warning: renamed from incidents/old-name.yaml: an incident's "
        "id is its file name, so this deletes incident 'old-name' and declares 'new-name'"
    )
