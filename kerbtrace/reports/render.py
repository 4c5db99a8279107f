"""Renders the escalation report (HTML or Markdown) from a `kerbtrace/1` document with Jinja2.

Jinja2 escapes every value in the HTML by default, which a report full of names, log lines and
free text taken from captures needs; string concatenation would leave that to every call site.
"""

from __future__ import annotations

import json
import re
from functools import cache

import jinja2
from markupsafe import Markup, escape

from kerbtrace import __version__
from kerbtrace.constants import Verdict
from kerbtrace.reports import summary

FORMATS = ("html", "md", "json")
_BACKQUOTED = re.compile(r"`([^`<>]{1,200})`")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("kerbtrace.reports", "templates"),
                             autoescape=jinja2.select_autoescape(["html.j2"], default_for_string=False),
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined,
                             keep_trailing_newline=True)
    env.filters["md"] = md_cell
    env.filters["prose"] = prose
    env.filters["clock"] = lambda ts, date=False: summary.chart.clock(ts, date) if ts is not None else ""
    env.filters["verdict"] = lambda v: (v or Verdict.INCONCLUSIVE).replace("_", " ")
    return env


def md_cell(value: object) -> str:
    """A value inside a Markdown table cell or line: no pipes, no line breaks, no stray markup."""
    text = "" if value is None else str(value)
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
            .replace("<", "&lt;"))


def prose(value: object) -> Markup:
    """Free text for HTML: escaped, with `backquoted` commands shown as code."""
    text = str(escape("" if value is None else value))
    return Markup(_BACKQUOTED.sub(r"<code>\1</code>", text))


def embedded_json(doc: dict) -> Markup:
    """The document inside <script type="application/json">: `<`, `>`, `&` escaped so no text ends it."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def render(doc: dict, fmt: str) -> str:
    """The report in `fmt` (html, md or json) for one document."""
    if fmt == "json":
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    view = summary.build(doc)
    template = _environment().get_template("report.html.j2" if fmt == "html" else "report.md.j2")
    return template.render(r=view, version=__version__,
                           embedded=embedded_json(doc) if fmt == "html" else "")
