"""`build [--out DIR]`: the site, with MkDocs and Material (SPEC 6)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from gitops_incidents.commands import UsageError

MKDOCS_FILE = Path("site") / "mkdocs.yml"
DEFAULT_OUT = Path("site") / "build"


def add_parser(subparsers: Any, name: str, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[common],
        help="build the site (site/mkdocs.yml) with MkDocs and Material",
        description="Generate the pages from the files and their history and build them "
        "with MkDocs and Material for MkDocs.",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help=f"default: {DEFAULT_OUT}")


def config_file(root: Path) -> Path:
    config_file = root / MKDOCS_FILE
    if not config_file.is_file():
        raise UsageError(f"no {MKDOCS_FILE} in {root}: the site's MkDocs project lives there")
    return config_file


def log_to_stderr() -> None:
    # MkDocs reports through logging; people read stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("mkdocs")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    from mkdocs.commands.build import build  # imported when used: slow
    from mkdocs.config import load_config
    from mkdocs.exceptions import MkDocsException

    mkdocs_file = config_file(args.repo)
    log_to_stderr()
    out = (args.out or args.repo / DEFAULT_OUT).resolve()
    try:
        build(load_config(config_file=str(mkdocs_file), site_dir=str(out)))
    except MkDocsException as exc:
        raise UsageError(f"{mkdocs_file}: {exc}") from None
    print(f"site built in {out}", file=sys.stderr)
    return 0
