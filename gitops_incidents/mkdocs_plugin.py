"""The MkDocs plugin `gitops-incidents`: the only code that knows MkDocs.

Before a build it has `site` generate the pages and hands them to MkDocs
in memory, beside the project's own pages from `docs_dir` (a generated page
wins over a hand-written one of the same path); nothing is staged on disk, so
a build writes no page source at all. While MkDocs renders, a thread writes the
downloads and feeds into the built site. Under `mkdocs serve` the plugin also
watches the tracker's files and the branch, so a commit rebuilds the preview.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mkdocs.config import base
from mkdocs.config import config_options as c
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import BasePlugin
from mkdocs.structure.files import File, Files

from gitops_incidents import gitcmd, site, tracker


def _write_all(out: Path, files: dict[str, bytes]) -> None:
    for folder in {(out / relpath).parent for relpath in files}:
        folder.mkdir(parents=True, exist_ok=True)
    for relpath, data in files.items():
        (out / relpath).write_bytes(data)


class IncidentsConfig(base.Config):  # type: ignore[no-untyped-call]
    # The tracker repository: by default the git repository around mkdocs.yml (the
    # built-in project of `build` lives outside it and names it).
    root = c.Optional(c.Dir(exists=True))


class IncidentsPlugin(BasePlugin[IncidentsConfig]):  # type: ignore[no-untyped-call]
    def __init__(self) -> None:
        self.built = site.Site()
        self.root = Path()
        self._writing: Future[None] | None = None

    def on_config(self, config: MkDocsConfig) -> MkDocsConfig:
        own = self.config.root
        self.root = Path(own) if own else tracker.find_root(Path(config.config_file_path).parent)
        self.root = self.root.resolve()
        try:
            self.built = site.from_repository(self.root, config.site_url or "")
        except gitcmd.GitError as exc:  # no commits yet, a shallow clone: said in one line
            raise PluginError(f"gitops-incidents: {exc}") from None
        if site.STYLE not in config.extra_css:
            config.extra_css.append(site.STYLE)
        if site.SCRIPT not in [str(script) for script in config.extra_javascript]:
            config.extra_javascript.append(site.SCRIPT)
        return config

    def on_files(self, files: Files, *, config: MkDocsConfig) -> Files:
        for path, text in self.built.pages.items():
            own = files.get_file_from_path(path)
            if own is not None:
                files.remove(own)
            files.append(File.generated(config, path, content=text))
        # The site folder was just cleaned. Thousands of downloads wait on the file
        # system, not on Python: a thread writes them while MkDocs renders the pages.
        pool = ThreadPoolExecutor(max_workers=1)
        self._writing = pool.submit(_write_all, Path(config.site_dir), self.built.files)
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
