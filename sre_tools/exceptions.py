"""One exception hierarchy for the whole package.

Front ends map these to exit codes: :class:`ValidationError` (bad input, exit 2) and every other
:class:`SreError` (runtime failure, exit 1). Messages are one line and name the file and field.
"""

from __future__ import annotations


class SreError(Exception):
    """Base of every error the package raises on purpose."""


class ValidationError(SreError, ValueError):
    """Input that does not satisfy its schema: a spec, a CSV row, a duration, a CLI value.

    ``source`` is the file (or ``<stdin>``, ``--option``) and ``field`` a dotted path inside it.
    """

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None):
        self.source = source
        self.field = field
        self.reason = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.source and self.field:
            where = f"{self.source}: {self.field}: "
        elif self.source:
            where = f"{self.source}: "
        elif self.field:
            where = f"{self.field}: "
        # One line, always: a YAML key or a file name may carry a newline.
        text = f"{where}{self.reason}"
        return text.replace("\r", "\\r").replace("\n", "\\n")

    def at(self, source: str) -> ValidationError:
        """Return the same error attributed to ``source`` (used by loaders that read files)."""
        return ValidationError(self.reason, source=source, field=self.field)

    def under(self, prefix: str) -> ValidationError:
        """Return the same error with ``prefix`` prepended to its field path."""
        field = f"{prefix}.{self.field}" if self.field else prefix
        return ValidationError(self.reason, source=self.source, field=field)


class StoreError(SreError):
    """The embedded store cannot be opened, read or written."""


class QueryError(SreError):
    """An SLI source (Prometheus HTTP API, store) failed or timed out."""


class NotFoundError(ValidationError):
    """A named object (SLO, incident) does not exist; bad input, so exit 2."""
