"""`build [--out DIR]`: the site, with MkDocs and Material (SPEC 6)."""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitops_incidents import gitcmd, tracker
from gitops_incidents.errors import Error, UsageError

if TYPE_CHECKING:
    from gitops_incidents.validation import Finding

MKDOCS_FILE = Path("site") / "mkdocs.yml"
DEFAULT_OUT = Path("site") / "build"
# Written into every built site: a folder that holds it is one MkDocs may empty.
MARKER = ".gitops-incidents-build"


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser, summary: str) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help=summary,
        description="Generate the pages from the files and their history and build them "
        "with MkDocs and Material for MkDocs.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help=f"default: {DEFAULT_OUT}; MkDocs empties it first, so it must be a folder "
        f"a build made (it holds {MARKER}) or a new or empty one",
    )
    parser.add_argument(
        "--safe",
        action="store_true",
        help="for a branch not yet trusted (a pull request): refuse what in site/mkdocs.yml "
        "would run code, read files or leave the repository, unless the base has it",
    )
    parser.add_argument(
        "--base",
        metavar="REV",
        help="with --safe: the trusted revision to compare with (default: the configured branch)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="build into an existing folder that a build did not make (its files are deleted)",
    )


# The project `build` and `serve` use where the repository has no site/mkdocs.yml
# (MkDocs reads it as YAML: JSON strings, so that no title or path can break it):
# the same pages as this repository's own site, titled from the configuration.
BUILT_IN = """\
site_name: {title}
docs_dir: {docs}
use_directory_urls: false
theme:
  name: material
  font: false
  palette:
    - media: "(prefers-color-scheme: light)"
      scheme: default
      toggle:
        icon: material/brightness-7
        name: Switch to dark mode
    - media: "(prefers-color-scheme: dark)"
      scheme: slate
      toggle:
        icon: material/brightness-4
        name: Switch to light mode
plugins:
  - search
  - gitops-incidents:
      root: {root}
nav:
  - Home: index.md
  - Incidents: incidents/index.md
  - Tags: tags/index.md
  - Metrics: metrics.md
validation:
  nav:
    omitted_files: ignore
"""


@contextmanager
def project(root: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The MkDocs project to build and MkDocs's options for it: the repository's own
    site/mkdocs.yml, or the built-in one. A `docs_dir` that does not exist is an
    empty one, as is the built-in project's where there is no site/docs."""
    with tempfile.TemporaryDirectory(prefix="gitops-incidents-site-") as scratch:
        empty = Path(scratch) / "docs"
        empty.mkdir()
        own = root / MKDOCS_FILE
        if own.is_file():
            docs = _docs_dir(own)
            yield own, {} if docs is None or docs.is_dir() else {"docs_dir": str(empty)}
            return
        from gitops_incidents.validation import load_config

        docs = root / "site" / "docs"
        built_in = Path(scratch) / "mkdocs.yml"
        built_in.write_text(
            BUILT_IN.format(
                # Material prints site_name as HTML, unescaped.
                title=json.dumps(html.escape(load_config(root)[0].site.title)),
                docs=json.dumps(str(docs if docs.is_dir() else empty)),
                root=json.dumps(str(root)),
            ),
            encoding="utf-8",
        )
        yield built_in, {}


def _docs_dir(mkdocs_file: Path) -> Path | None:
    """Where the project's docs_dir points (None: MkDocs will say what is wrong)."""
    from mkdocs.utils.yaml import yaml_load

    try:
        with mkdocs_file.open("rb") as file:
            data = yaml_load(file)
    except Exception:  # MkDocs's loader raises what its tags raise: MkDocs reports it
        return None
    docs = data.get("docs_dir", "docs") if isinstance(data, dict) else None
    return mkdocs_file.parent / docs if isinstance(docs, str) else None


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Whatever sys.stderr is when a record comes (main() may run more than once)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def log_to_stderr() -> None:
    # MkDocs reports through logging; people read stderr.
    logger = logging.getLogger("mkdocs")
    if not any(isinstance(h, _Stderr) for h in logger.handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    log_to_stderr()
    out = (args.out or args.repo / DEFAULT_OUT).resolve()
    check_out(args.repo, out, force=args.force)
    if args.safe:
        refused = unsafe(args.repo, args.base)
        if refused:
            for finding in refused:
                print(finding, file=sys.stderr)
            print(f"not built: {len(refused)} problem(s) for a safe build", file=sys.stderr)
            return 1
    elif args.base:
        raise UsageError("--base goes with --safe")
    build_site(args.repo, out)
    print(f"site built in {out}", file=sys.stderr)
    return 0


def build_site(root: Path, out: Path) -> Path:
    """Build the site into `out` (a folder `check_out` accepted); UsageError with
    MkDocs's reason. Run again in one process (the daemon's `--build`), MkDocs stays
    imported, and every file version parsed before comes from the parse cache."""
    from mkdocs.commands.build import build  # imported when used: slow
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    with project(root) as (mkdocs_file, options):
        try:
            build(load_config(config_file=str(mkdocs_file), site_dir=str(out), **options))
            (out / MARKER).write_text("built by gitops-incidents: `build` may empty this folder\n")
        except MkDocsException as exc:
            raise Error(f"{_shown(root, mkdocs_file)}: {exc}") from None
        except OSError as exc:
            raise UsageError(f"--out {out}: {exc.strerror}: {exc.filename}") from None
    return out


def _shown(root: Path, mkdocs_file: Path) -> str:
    return str(mkdocs_file) if mkdocs_file.is_relative_to(root) else "the built-in site"


def unsafe(root: Path, base: str | None) -> list[Finding]:
    from gitops_incidents import site_safety
    from gitops_incidents.repository import default_until

    name = base or default_until(root)
    gitcmd.resolve(root, name)  # UnknownRevision: a usage error
    return site_safety.problems(root, name)


def check_out(root: Path, out: Path, *, force: bool) -> None:
    """Refuse an output folder whose files a build would delete and did not make: the
    tracker's own data (even with --force), or files without a build's marker."""
    kept = [root / tracker.INCIDENTS, root / tracker.AUTOMATIONS, root / "site" / "docs"]
    kept += [root / MKDOCS_FILE, gitcmd.git_dir(root) if (root / ".git").exists() else root]
    for data in kept:
        if out == data or out in data.parents:
            raise UsageError(f"--out {out}: emptying it would delete the tracker's own {data}")
        if data in out.parents and data.is_dir():
            raise UsageError(f"--out {out}: inside the tracker's own {data}")
    if out == root or out in root.parents:
        raise UsageError(f"--out {out}: would delete the repository")
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {out}: {parent} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not force:
        raise UsageError(
            f"--out {out}: the folder holds files a build did not make, and a build empties "
            "it first: choose another folder, or pass --force to delete them"
        )
