"""CSV that is safe to open in a spreadsheet: one writer for every CSV the platform produces.

A spreadsheet treats a cell that starts with `=`, `+`, `-` or `@` as a formula (and a leading
tab or carriage return can hide one), so a person's name such as `=HYPERLINK("http://...")`
typed into a profile would run in the coordinator's spreadsheet that opens a report. OWASP's
advice is followed: such a text cell is prefixed with a single quote, which spreadsheets show
as text and never evaluate. Numbers the platform computed (a negative mean, say) are values,
not text someone typed, so they are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """The cell as written: text starting with a formula trigger gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def write_rows(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A CSV document (header, then one line per row; missing columns empty), every text cell
    and column name neutralised."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([neutralise(c) for c in columns])
    for row in rows:
        writer.writerow([neutralise(row.get(c, "")) for c in columns])
    return out.getvalue()
