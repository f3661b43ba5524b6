"""`oko server ...`: the central server that edge nodes send their events to."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Central server: run it, manage nodes and users.")
