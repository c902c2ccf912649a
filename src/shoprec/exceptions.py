"""Every error shoprec raises on purpose, in one place.

The tree::

    ShoprecError
    ├── DataError                 bad input data (a file, a row, a field)
    │   ├── EmptyInputError       a file with no data rows
    │   └── SchemaError           missing / unknown columns, wrong delimiter
    ├── ConfigError               a configuration that does not validate
    ├── RequestError              a recommendation request that does not validate
    ├── NotFittedError            a strategy used before ``fit``
    └── ArtifactError             a saved model that cannot be loaded
"""

from __future__ import annotations


class ShoprecError(Exception):
    """Base class of all shoprec errors."""


class DataError(ShoprecError, ValueError):
    """Input data is wrong. The message names the file, the line, the field and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = path
        self.line = line
        self.field = field


class EmptyInputError(DataError):
    """A file (or table) that holds no data rows."""


class SchemaError(DataError):
    """Columns missing or unknown, or the file does not parse into the expected columns."""


class ConfigError(ShoprecError, ValueError):
    """A configuration value that does not validate."""


class RequestError(ShoprecError, ValueError):
    """A recommendation request (the page's context) that does not validate: unknown fields, wrong
    types, an unknown scenario."""


class NotFittedError(ShoprecError, RuntimeError):
    """A strategy was asked to recommend before it was fitted."""


class ArtifactError(ShoprecError):
    """A saved artifact is missing, corrupt or of an incompatible version."""
