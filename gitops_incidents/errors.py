"""The errors a person can act on, each said in one line by `cli.main`, with the
exit status its kind has (README: 1 findings and failed actions, 2 usage errors).
Anything else that escapes a command is a bug: exit 3, a short message, and where
to report it."""

from __future__ import annotations


class Error(Exception):
    """Something in the repository or its surroundings stops the command (a damaged
    ledger, git failing, no commits yet): exit 1."""

    status = 1


class UsageError(Error):
    """Bad arguments: exit 2."""

    status = 2
