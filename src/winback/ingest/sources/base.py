"""The reader contract shared by every source format."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

ROW = "_row"  # int64 column: the row number a user would look for (CSV: spreadsheet row, header = 1;
              # JSONL: line number; Parquet: 1-based record number)


@dataclass
class RawTable:
    """A table read from one file: every column is ``pa.string()`` (nulls for empty cells) plus ``_row``.

    ``table`` is the canonical table name the rows are meant for (``customers``, ``orders`` ...).
    ``file`` is the path shown in error messages.
    """

    table: str
    file: str
    data: pa.Table

    @property
    def columns(self) -> list[str]:
        return [c for c in self.data.column_names if c != ROW]

    @property
    def num_rows(self) -> int:
        return self.data.num_rows
