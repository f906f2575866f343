"""Typed errors and the skip-or-fail policy.

Library code raises these errors; it never decides by itself whether to skip a bad
item. Readers and writers receive an :class:`ErrorPolicy` from the caller (the CLI's
``--on-error skip|fail``) and route per-item errors through :meth:`ErrorPolicy.handle`,
which either raises or records the item so the manifest can list it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


class SodkitError(Exception):
    """Base of every error sodkit reports to the user as one clear line."""


class UsageError(SodkitError):
    """A command was called in a way that cannot work (bad option, unknown layout, ...)."""


class OutputExistsError(SodkitError):
    """The output folder exists and is not empty, and ``--overwrite`` was not given."""


class ItemError(SodkitError):
    """A problem with one item (image, label file, annotation) of a dataset.

    ``where`` names the file; ``line``/``field`` pin the place inside it; ``rule`` says
    what is wrong and ``hint`` what to do about it.
    """

    kind = "item"

    def __init__(
        self,
        where: str | Path,
        rule: str,
        *,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.where = str(where)
        self.rule = rule
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.message)

    @property
    def message(self) -> str:
        loc = f"'{self.where}'"
        if self.line is not None:
            loc += f" line {self.line}"
        if self.field is not None:
            loc += f" field '{self.field}'"
        msg = f"{loc}: {self.rule}"
        if self.hint:
            msg += f" ({self.hint})"
        return msg

    def of_reference(self) -> ItemError:
        """This error, its message saying the item belongs to dedupe's ``--against`` set."""
        if not self.rule.startswith("in the --against reference: "):
            self.rule = f"in the --against reference: {self.rule}"
            self.args = (self.message,)
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for the manifest."""
        out: dict[str, Any] = {"kind": self.kind, "file": self.where, "error": self.rule}
        if self.line is not None:
            out["line"] = self.line
        if self.field is not None:
            out["field"] = self.field
        return out


class MalformedFileError(ItemError):
    """JSON/XML/YAML/label text that cannot be parsed."""

    kind = "malformed"


class MissingFileError(ItemError):
    """An image or label file that a dataset references but that does not exist."""

    kind = "missing"


class CorruptImageError(ItemError):
    """An image file that cannot be decoded (truncated, empty, not an image)."""

    kind = "corrupt-image"


class ImageTooLargeError(ItemError):
    """An image above the pixel limit (decompression-bomb guard)."""

    kind = "too-large"


class AnnotationError(ItemError):
    """An annotation that breaks a rule: degenerate or out-of-bounds box, unknown class, ..."""

    kind = "bad-annotation"


@dataclass(frozen=True, slots=True)
class ItemFailure:
    """A per-image error as plain data, for results of worker processes (exceptions with
    keyword arguments do not pickle)."""

    kind: str
    where: str
    rule: str
    hint: str | None

    @classmethod
    def of(cls, err: ItemError) -> ItemFailure:
        return cls(err.kind, err.where, err.rule, err.hint)

    def error(self) -> ItemError:
        """The typed error again, for the caller's :class:`ErrorPolicy`."""
        cls_ = {
            CorruptImageError.kind: CorruptImageError,
            MissingFileError.kind: MissingFileError,
            ImageTooLargeError.kind: ImageTooLargeError,
        }.get(self.kind, CorruptImageError)
        return cls_(self.where, self.rule, hint=self.hint)


class ClassMapError(SodkitError):
    """Class names that the class map does not cover."""


class OnError(str, Enum):
    """What to do with a bad item."""

    skip = "skip"
    fail = "fail"


@dataclass
class ErrorPolicy:
    """Routes per-item errors: raise them (``fail``) or record them (``skip``)."""

    mode: OnError = OnError.fail
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def handle(
        self,
        error: ItemError,
        *,
        left_out: str | Path | None = None,
        left_out_annotations: int = 0,
        **details: Any,
    ) -> None:
        """Raise ``error`` under ``fail``; record it under ``skip``, with the image it
        left out of the dataset (``left_out``), the annotations that went with it
        (``left_out_annotations``, recorded when there are any) and any ``details``
        (``against=True``: the item belongs to dedupe's reference set)."""
        if self.mode is OnError.fail:
            raise error.of_reference() if details.get("against") else error
        record = error.to_dict() | details
        if left_out is not None:
            record["left_out"] = str(left_out)
        if left_out_annotations:
            record["left_out_annotations"] = left_out_annotations
        self.skipped.append(record)

    @property
    def fail_fast(self) -> bool:
        return self.mode is OnError.fail
