"""The MkDocs plugin `gitops-incidents`: the only code that knows MkDocs.

Before a build it has `site.generate` write the pages (only those that changed)
to a folder under the repository's git directory, with the project's own
`docs_dir` files beside them, and points MkDocs there; after it, it writes the
downloads and feeds into the built site. Under `mkdocs serve` it also watches
the tracker's files and the branch, so a commit rebuilds the preview.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import Files

from gitops_incidents import gitcmd, site, tracker
from gitops_incidents.repository import config_at, default_until


def _write_all(out: Path, files: dict[str, bytes]) -> None:
    for folder in {(out / relpath).parent for relpath in files}:
        folder.mkdir(parents=True, exist_ok=True)
    for relpath, data in files.items():
        (out / relpath).write_bytes(data)


def staging_dir(root: Path) -> Path:
    return gitcmd.git_dir(root) / "gitops-incidents" / "site-docs"


class IncidentsPlugin(BasePlugin):  # type: ignore[type-arg,no-untyped-call]
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.root = Path()
        self._writing: Future[None] | None = None

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        self.root = tracker.find_root(Path(config.config_file_path).resolve().parent)
        until = default_until(self.root)
        tracker_config = config_at(self.root, until)
        built = site.generate(
            site.read(self.root, tracker_config, until), tracker_config, config.site_url or ""
        )
        own = Path(config.docs_dir)
        pages = (
            {
                p.relative_to(own).as_posix(): p.read_bytes()
                for p in sorted(own.rglob("*"))
                if p.is_file()
            }
            if own.is_dir()
            else {}
        )
        pages.update({path: text.encode() for path, text in built.pages.items()})
        staging = staging_dir(self.root)
        site.write_changed(pages, staging)
        config.docs_dir = str(staging)
        if site.STYLE not in config.extra_css:
            config.extra_css.append(site.STYLE)
        self.files = built.files
        return config

    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files:
        # The site folder was just cleaned. Thousands of downloads wait on the file
        # system, not on Python: a thread writes them while MkDocs renders the pages.
        pool = ThreadPoolExecutor(max_workers=1)
        self._writing = pool.submit(_write_all, Path(config.site_dir), self.files)
        pool.shutdown(wait=False)  # the worker ends once the writes are done
        return files

    def on_post_build(self, *, config: MkDocsConfig) -> None:
        if self._writing is not None:
            self._writing.result()  # a failed write fails the build
            self._writing = None

    def on_serve(self, server: Any, *, config: MkDocsConfig, builder: Any) -> Any:
        for watched in (tracker.INCIDENTS, tracker.AUTOMATIONS, tracker.CONFIG_FILE):
            if (self.root / watched).exists():
                server.watch(str(self.root / watched))
        head_log = gitcmd.git_dir(self.root) / "logs" / "HEAD"
        if head_log.exists():
            server.watch(str(head_log))  # a commit or a checkout
        return server
