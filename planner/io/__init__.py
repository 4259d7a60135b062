"""Reading and writing books and plan files; nothing else in the planner touches files.

- :mod:`planner.io.tables` reads a book's CSV or Parquet tables through pyarrow;
- :mod:`planner.io.cells` checks and parses their cells, naming file, row and field;
- :mod:`planner.io.toml_files` reads ``models.toml`` and ``book.toml``;
- :mod:`planner.io.read` builds the :class:`~planner.domain.Book`;
- :mod:`planner.io.write` writes plan files and books;
- :mod:`planner.io.outputs` switches a command's set of files in one step.
"""

from planner.io.outputs import OutputFolder, write_outputs
from planner.io.read import load_book, validate_book
from planner.io.write import write_book

__all__ = ["OutputFolder", "load_book", "validate_book", "write_book", "write_outputs"]
