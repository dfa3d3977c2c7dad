"""Per-partner figures for the last hour and day, counted from the journey rows.

The rows are the one place every stage writes its outcome, so the figures agree with
what a search shows; a window's count stops at ``FIGURE_ROWS`` rows, and the page says
so when it did (metrics in Application Insights have no such limit).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .models import IngestionStatus, StageFigures, Viewer
from .search import IngestionRows
from .status import ingestion_status

__all__ = ["FIGURE_ROWS", "Figures", "Window"]

FIGURE_ROWS = 20_000  # journey rows one window reads at most

_FIELD = {
    IngestionStatus.STORED: "stored",
    IngestionStatus.PARTIAL: "partial",
    IngestionStatus.REJECTED: "rejected",
    IngestionStatus.DENIED: "denied",
    IngestionStatus.FAILED: "failed",
    IngestionStatus.IN_PROGRESS: "in_progress",
}


@dataclass(frozen=True, slots=True)
class Window:
    """One window's figures: a line per partner, and whether the count was cut."""

    label: str
    partners: list[StageFigures]
    truncated: bool


class Figures:
    """Counts ingestions by partner and outcome over recent windows."""

    def __init__(self, rows: IngestionRows, clock: Callable[[], datetime]) -> None:
        self._rows = rows
        self._clock = clock

    def windows(self, viewer: Viewer) -> list[Window]:
        """The last hour and the last day.

        Raises:
            StorageUnavailableError: storage failed.
        """
        now = self._clock()
        return [
            self._window(viewer, "last hour", now - timedelta(hours=1)),
            self._window(viewer, "last 24 hours", now - timedelta(days=1)),
        ]

    def _window(self, viewer: Viewer, label: str, since: datetime) -> Window:
        query = "received_at ge @since"
        parameters: dict[str, object] = {"since": since}
        if not viewer.operator:
            query += " and PartitionKey eq @partner"
            parameters["partner"] = viewer.partner
        rows, complete = self._rows.find(query, parameters, FIGURE_ROWS)
        counts: dict[str, StageFigures] = defaultdict(lambda: StageFigures(""))
        for row in rows:
            partner = str(row["PartitionKey"])
            if not viewer.may_see(partner):
                continue
            line = counts[partner]
            field = _FIELD[ingestion_status(row)]
            resources = row.get("store_created", 0) + row.get("store_updated", 0)
            counts[partner] = replace(
                line,
                partner=partner,
                received=line.received + 1,
                resources=line.resources + (resources if isinstance(resources, int) else 0),
                **{field: getattr(line, field) + 1},
            )
        return Window(label, [counts[p] for p in sorted(counts)], not complete)
