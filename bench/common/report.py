"""How the sections print: one console, one way to write a verdict and a latency."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

console = Console(width=150)


def verdict(met: bool, missed: str = "not met") -> str:
    return "[green]met[/green]" if met else f"[red]{missed}[/red]"


def ms(value: float | None, digits: int = 1) -> str:
    """A latency in ms, or ``-`` where nothing was answered."""
    return "-" if value is None else f"{value:.{digits}f}"


def make_table(title: str, columns: Iterable[str]) -> Table:
    """An empty table with these column headings."""
    made = Table(title=title)
    for column in columns:
        made.add_column(column)
    return made
