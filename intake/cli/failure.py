"""How a command refuses: raise `CommandError(message)`.

Click prints its own `ClickException` as `Error: ...`; the commands' contract (and their tests)
is one line `error: ...` on stderr and exit status 1, so the subclass only changes that line.
Raised inside a `session_scope`, it rolls the transaction back like any other exception.
"""

from __future__ import annotations

from typing import IO, Any

import click


class CommandError(click.ClickException):
    """A command refused: one line `error: MESSAGE` on stderr, exit status 1. Never put answers
    or other patient data in the message."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=file is None)
