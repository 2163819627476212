"""Links into the forge that hosts the tracker (`site.repo_url`): a commit, the web
editor of an incident's file, and a new incident file with a template filled in.

GitHub, GitLab and Gitea (Forgejo and Codeberg run Gitea's routes) each spell these
differently; the forge is `site.forge`, or else told from the URL's host. An unknown
forge gets commit links in GitHub's form, the most common one, and no editor links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, urlencode, urlsplit

Kind = Literal["github", "gitlab", "gitea"]

# Each forge's routes below the repository's URL: commit, edit, new file (a folder),
# and the query keys of the new file's name and content.
_ROUTES: dict[str, tuple[str, str, str, tuple[str, str]]] = {
    "github": ("commit/{sha}", "edit/{branch}/{path}", "new/{branch}/{folder}",
               ("filename", "value")),
    "gitlab": ("-/commit/{sha}", "-/edit/{branch}/{path}", "-/new/{branch}/{folder}",
               ("file_name", "content")),
    "gitea": ("commit/{sha}", "_edit/{branch}/{path}", "_new/{branch}/{folder}/",
              ("filename", "value")),
}  # fmt: skip
_HOSTS = (("github", "github"), ("gitlab", "gitlab"), ("gitea", "gitea"), ("forgejo", "gitea"),
          ("codeberg.org", "gitea"))  # fmt: skip


def kind_of(repo_url: str, forge: str | None = None) -> str | None:
    """The forge `repo_url` is on: `forge` if given, else the one its host names."""
    if forge:
        return forge
    host = (urlsplit(repo_url).hostname or "").lower()
    return next((kind for part, kind in _HOSTS if part in host), None)


@dataclass(frozen=True)
class Forge:
    """The links of one repository on its forge; with no `repo_url`, none at all."""

    repo_url: str | None
    branch: str = "main"
    kind: str | None = None

    @classmethod
    def of(cls, repo_url: str | None, branch: str, forge: str | None = None) -> Forge:
        base = repo_url.rstrip("/") if repo_url else None
        return cls(base, branch, kind_of(base, forge) if base else None)

    def commit(self, sha: str) -> str | None:
        if not self.repo_url:
            return None
        route = _ROUTES[self.kind or "github"][0]
        return f"{self.repo_url}/{route.format(sha=sha)}"

    def edit(self, path: str) -> str | None:
        """The web editor of the file at `path` on the branch."""
        if not self.repo_url or self.kind is None:
            return None
        route = _ROUTES[self.kind][1]
        return f"{self.repo_url}/{route.format(branch=quote(self.branch), path=quote(path))}"

    def new_file(self, folder: str, name: str, content: str) -> str | None:
        """The forge's page for a new file `name` in `folder`, `content` filled in."""
        if not self.repo_url or self.kind is None:
            return None
        _, _, route, (name_key, content_key) = _ROUTES[self.kind]
        where = route.format(branch=quote(self.branch), folder=quote(folder))
        return f"{self.repo_url}/{where}?{urlencode({name_key: name, content_key: content})}"
