"""Options several ``intake`` commands share (the partner commands live in their own module)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["root_option", "settings_option"]

root_option = click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False),
    default=".",
    show_default=True,
    help="Folder with host.json and function_app.py.",
)
settings_option = click.option(
    "--settings",
    type=click.Path(path_type=Path),
    default="local.settings.json",
    show_default=True,
    help="local.settings.json to read app settings (and the host's keys) from.",
)
