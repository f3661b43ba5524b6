"""`oko faces ...`: the persistent face gallery (enroll, list, remove, search, eval)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Face gallery: enroll, list, remove, search, eval.")
