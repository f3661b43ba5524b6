"""`oko road ...`: road-condition tools.

Heavy imports stay inside the commands so that `oko --help` is fast. User errors raise
OkoError subclasses: the CLI prints one line and exits 2.
"""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Road condition: cleanup, analytics.")


@app.callback()
def _group() -> None:
    """Road condition: cleanup and analytics."""
