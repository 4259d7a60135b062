"""Reading and writing books and plan files; nothing else in the planner touches files.

- :mod:`planner.io.tables` reads a book's CSV or Parquet tables through pyarrow;
- :mod:`planner.io.cells` checks and parses their cells, naming file, row and field;
- :mod:`planner.io.toml_files` reads ``models.toml`` and ``book.toml``;
- :mod:`planner.io.read` builds the :class:`~planner.domain.Book`;
- :mod:`planner.io.write` writes plan files and books.
"""

from planner.io.read import load_book, validate_book
from planner.io.write import write_book, write_outputs

__all__ = ["load_book", "validate_book", "write_book", "write_outputs"]
