"""`kerbtrace report`: the escalation report, from capture files (analysed as `analyze` does) or from
a `kerbtrace/1` document written earlier, in HTML, Markdown or JSON, optionally redacted."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from kerbtrace.constants import Verdict
from kerbtrace.reports.redact import redact, resolve_key
from kerbtrace.reports.render import FORMATS, render
from kerbtrace.reports.summary import DocumentError, load_document, looks_like_document

SUFFIX_FORMATS = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json"}


class ReportError(Exception):
    """A report that cannot be made: the message says why (no traceback)."""


def output_format(given: str | None, output: str) -> str:
    if given:
        return given
    return SUFFIX_FORMATS.get(Path(output).suffix.lower(), "html")


def documents_given(inputs: list[str]) -> bool:
    """True when the inputs are one `kerbtrace/1` document; a mix with captures is refused."""
    docs = [p for p in inputs if looks_like_document(p)]
    if docs and len(inputs) > 1:
        raise ReportError(f"{docs[0]}: a kerbtrace/1 document is reported on its own; give either one document "
                          "or capture files (with their context options)")
    return bool(docs)


def read_document(path: str) -> dict:
    try:
        return load_document(path)
    except DocumentError as exc:
        raise ReportError(str(exc)) from None


def write(doc: dict, output: str, fmt: str, *, redact_it: bool, key: str | None, err: TextIO = sys.stderr) -> None:
    """Render `doc` (redacted first when asked) and write it to `output` ('-' for standard output)."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    if redact_it or key:
        secret, source = resolve_key(key)
        doc = redact(doc, secret, source)
        if source == "random":
            print("kerbtrace: redacted with a random key: pseudonyms differ from any other report's "
                  "(give --redact-key or KERBTRACE_REDACT_KEY to keep them stable across reports)", file=err)
    text = render(doc, fmt)
    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ReportError(f"cannot write {output}: {exc}") from None


def exit_status(doc: dict) -> tuple[int, list[str]]:
    """As `analyze`: 2 when an input could not be read, 1 when a client was not approved, else 0."""
    errors = [f"{i.get('path')}: {i['error']}" for i in doc.get("inputs", []) if isinstance(i, dict) and i.get("error")]
    if errors or not doc.get("inputs"):
        return 2, errors
    return (1 if any(c.get("verdict") != Verdict.APPROVED for c in doc.get("clients", [])) else 0), []
