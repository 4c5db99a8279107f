"""`kerbtrace explain CODE`: any code an admin meets, in any notation, looked up in kerbtrace's code tables.

The tables are the ones the checks use (`kerbtrace.codes`); this module only reads the notation (IIS unsigned
decimal, hex with or without 0x, signed decimal, names, event ID with its result code, IIS status triple),
finds every table the value can belong to and orders them, most likely first.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field

from kerbtrace import codes
from kerbtrace.codes import CodeInfo, IisStatus

EXIT_FOUND = 0
EXIT_UNKNOWN = 1
EXIT_MALFORMED = 2

_MAX_INPUT = 200  # characters; nothing longer is a code
_U32 = 0xFFFFFFFF
# Words an admin may put before the code to say which kind it is.
_PREFIXES = {
    "event": "event", "eventid": "event", "event-id": "event", "id": "event",
    "iis": "iis", "http": "iis",
    "krb": "krb", "kerberos": "krb",
    "ntstatus": "ntstatus", "status": "ntstatus",
    "win32": "win32", "hresult": "hresult", "hr": "hresult",
    "ccm": "ccm", "configmgr": "ccm", "sccm": "ccm",
    "dns": "dns-rcode", "rcode": "dns-rcode",
}
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*")
_DEC_RE = re.compile(r"[+-]?\d+")
_HEX_RE = re.compile(r"(?:0[xX])?([0-9a-fA-F]+)[hH]?")
_IIS_DOTTED_RE = re.compile(r"([1-5]\d\d)\.(\d{1,3})(?:\.(\d+))?")


class ExplainError(ValueError):
    """The argument is not a code in any notation kerbtrace reads (exit status 2)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One way to read a number: its value and the notation it was written in."""

    value: int
    notation: str  # "decimal" | "signed" | "hex" | "digits-as-hex"


@dataclass(slots=True)
class Match:
    """One table entry the query can mean, with an event's decoded result codes or an IIS line's status."""

    info: CodeInfo
    reading: str  # how the input was read, in words
    results: list[tuple[str, CodeInfo]] = field(default_factory=list)  # (field name, decoded code)
    iis: IisStatus | None = None


@dataclass(slots=True)
class Explanation:
    query: str
    matches: list[Match]
    hints: list[str]

    @property
    def found(self) -> bool:
        return bool(self.matches)


# ------------------------------------------------------------------------------------------------ parsing


def _number(token: str) -> list[Reading]:
    """All readings of one numeric token; ExplainError when it is not a number in any notation."""
    if _DEC_RE.fullmatch(token):
        value = int(token)
        readings = [Reading(value, "signed" if value < 0 else "decimal")]
        digits = token.lstrip("+-")
        if value >= 0 and len(digits) == 8:  # "80070005" as logs print HRESULTs, without 0x
            readings.append(Reading(int(digits, 16), "digits-as-hex"))
        return readings
    m = _HEX_RE.fullmatch(token)
    if m and (token[:2].lower() == "0x" or re.search(r"[a-fA-F]", m.group(1))):
        return [Reading(int(m.group(1), 16), "hex")]
    raise ExplainError(f"cannot read {token!r} as a number (decimal, -signed, 0xHEX) or a code name")


def _tokens(text: str) -> tuple[str | None, list[str]]:
    if len(text) > _MAX_INPUT:
        raise ExplainError(f"argument too long ({len(text)} characters) to be a code")
    parts = [p for p in re.split(r"[\s:,;/=()]+", text.strip()) if p]
    if not parts:
        raise ExplainError("no code given")
    forced = None
    if parts[0].lower() in _PREFIXES and len(parts) > 1:
        forced = _PREFIXES[parts[0].lower()]
        parts = parts[1:]
    if len(parts) > 3:
        raise ExplainError("too many values: give one code, an event ID and its result code ('4771 0x18'), "
                           "or an IIS status ('401 2 5')")
    return forced, parts


# ------------------------------------------------------------------------------------------------ lookup


def _candidates(reading: Reading) -> list[CodeInfo]:
    """Every listed entry the value can be, in any table (unlisted values give nothing)."""
    v = reading.value
    found: list[CodeInfo] = []
    if reading.notation != "digits-as-hex":
        for table in (codes.KRB_ERRORS, codes.WIN32, codes.DC_EVENTS, codes.DNS_RCODES):
            if v in table:
                found.append(table[v])
        if 100 <= v <= 599 and v * 1000 in codes.IIS_STATUS:
            found.append(codes.IIS_STATUS[v * 1000])
    if -(2**31) <= v <= _U32:
        v32 = v & _U32
        if v32 in codes.NTSTATUS:
            found.append(codes.NTSTATUS[v32])
        if v32 in codes.HRESULTS or v32 in codes.CCM_HRESULTS or (
                v32 & 0xFFFF0000 == 0x80070000 and v32 & 0xFFFF in codes.WIN32):
            found.append(codes.hresult(v32))
    return found


def _rank(reading: Reading, info: CodeInfo) -> tuple[int, int]:
    """Most likely first: the kind that usually wears this notation, then codes that occur in registration."""
    v = reading.value & _U32 if -(2**31) <= reading.value <= _U32 else reading.value
    if v >= 0x10000:
        top = v >> 28
        order = {"ccm": 0, "hresult": 1, "ntstatus": 2} if top < 0xC else {"ntstatus": 0, "hresult": 1}
    elif reading.notation == "hex":  # small hex: DC events print Kerberos errors as 0x18
        order = {"krb": 0, "ntstatus": 1, "hresult": 1, "win32": 2, "dns-rcode": 5, "event": 7, "iis": 8}
    else:
        order = {"krb": 0, "win32": 1, "event": 2, "iis": 3, "dns-rcode": 5, "ntstatus": 6, "hresult": 6}
    relevant = 2 if (info.fix or info.normal) else 0
    return order.get(info.kind, 9) - relevant, 1 if reading.notation == "digits-as-hex" else 0


def _words(reading: Reading) -> str:
    return {"hex": f"hex 0x{reading.value:X}", "digits-as-hex": f"{reading.value:X} read as hex",
            "signed": f"signed decimal {reading.value}"}.get(reading.notation, f"decimal {reading.value}")


def _by_name(token: str, forced: str | None) -> list[Match]:
    name = token.upper().replace("-", "_")
    if re.match(r"KRB5(KDC|KRB)_", name):  # MIT spelling: KRB5KDC_ERR_..., KRB5KRB_AP_ERR_...
        name = name[4:]
    named = [c for c in codes.all_codes() if _NAME_RE.fullmatch(c.name) and (forced in (None, c.kind))]
    exact = [c for c in named if c.name.upper() == name]
    if exact:
        return [Match(c, f"name {c.name}") for c in exact]
    if len(name) < 4:
        return []
    return [Match(c, f"name containing {token.upper()}") for c in named if name in c.name.upper()]


_MAX_PARTIAL = 20


def _by_number(token: str, forced: str | None) -> list[Match]:
    scored: list[tuple[tuple[int, int], Match]] = []
    seen: set[tuple[str, int]] = set()
    for reading in _number(token):
        for info in _candidates(reading):
            if forced not in (None, info.kind) or (info.kind, info.value) in seen:
                continue
            seen.add((info.kind, info.value))
            scored.append((_rank(reading, info), Match(info, _words(reading))))
    scored.sort(key=lambda pair: pair[0])
    return [m for _, m in scored]


def _single(token: str) -> int:
    readings = [r for r in _number(token) if r.notation != "digits-as-hex"]
    return readings[0].value


def _event(parts: list[str]) -> list[Match]:
    event_id = _single(parts[0])
    info = codes.DC_EVENTS.get(event_id)
    if info is None:
        return []
    match = Match(info, f"event ID {event_id}")
    field_name, _ = codes.EVENT_CODE_FIELDS.get(event_id, ("", ""))
    names = field_name.split(" / ") if field_name else []
    for i, token in enumerate(parts[1:]):
        value = _single(token)
        decoded = codes.event_result(event_id, value)
        if decoded is not None:
            match.results.append((names[min(i, len(names) - 1)], decoded))
    return [match]


def _iis(status: int, substatus: int, win32: int | None) -> list[Match]:
    state = codes.iis_status(status, substatus, win32)
    return [Match(state.code, f"IIS sc-status {status}, sc-substatus {substatus}"
                  + ("" if win32 is None else f", sc-win32-status {win32}"), iis=state)]


def explain(text: str) -> Explanation:
    """Every table entry ``text`` can mean, most likely first; raises ExplainError for a malformed argument."""
    forced, parts = _tokens(text)
    hints: list[str] = []
    first = parts[0]
    dotted = _IIS_DOTTED_RE.fullmatch(first)
    if dotted and len(parts) <= 2 and forced in (None, "iis"):
        win32_token = dotted.group(3) or (parts[1] if len(parts) == 2 else None)
        win32 = _single(win32_token) if win32_token is not None else None
        return Explanation(text, _iis(int(dotted.group(1)), int(dotted.group(2)), win32), hints)
    if len(parts) == 1:
        if _NAME_RE.fullmatch(first) and not _HEX_RE.fullmatch(first):
            matches = _by_name(first, forced)
            if len(matches) > _MAX_PARTIAL:
                hints.append(f"{len(matches) - _MAX_PARTIAL} more names contain {first.upper()}; give more of it")
                matches = matches[:_MAX_PARTIAL]
            return Explanation(text, matches, hints)
        matches = _by_number(first, forced)
        if not matches:
            hints = _unlisted_hints(_number(first)[0].value)
        return Explanation(text, matches, hints)
    head = _single(first)
    rest = [_single(p) for p in parts[1:]]  # malformed values fail here, before any lookup
    if forced == "event" or (forced is None and (head in codes.EVENT_CODE_FIELDS or head >= 1000)):
        matches = _event(parts)
        if matches and head not in codes.EVENT_CODE_FIELDS:
            hints.append(f"event {head} carries no result code; the value after it was not decoded")
        elif not matches:
            hints.append(f"event ID {head} is not in kerbtrace's table of events")
        return Explanation(text, matches, hints)
    if forced in (None, "iis") and 100 <= head <= 599:
        if len(rest) == 1 or len(rest) == 2:
            return Explanation(text, _iis(head, rest[0], rest[1] if len(rest) == 2 else None), hints)
    raise ExplainError("give one code, an event ID and its result code ('4771 0x18'), or an IIS status "
                       "('401 2 5', '401.2 2148074254')")


def _unlisted_hints(value: int) -> list[str]:
    """What the structure of an unlisted number still says."""
    if not -(2**31) <= value <= _U32:
        return [f"{value} does not fit in 32 bits: no Windows, Kerberos or ConfigMgr code is that large"]
    v = value & _U32
    if v & 0xFFFF0000 == 0x80070000:
        return [f"0x{v:08X} is HRESULT_FROM_WIN32({v & 0xFFFF}): Win32 error {v & 0xFFFF} wrapped in an HRESULT; "
                "try `certutil -error` or `net helpmsg` on Windows"]
    if v & 0xFFFF0000 == 0x87D00000:
        return [f"0x{v:08X} is a ConfigMgr code kerbtrace does not list; CMTrace's Tools > Error Lookup names it"]
    if v >= 0xC0000000:
        return [f"0x{v:08X} has the form of an NTSTATUS error; kerbtrace lists only the authentication ones"]
    if v >= 0x80000000:
        return [f"0x{v:08X} has the form of an HRESULT failure; kerbtrace lists only the authentication ones"]
    return []


# ------------------------------------------------------------------------------------------------ output

_WIDTH = 100


def _block(info: CodeInfo, indent: str) -> list[str]:
    out = []
    for key, text in (("meaning", info.meaning), ("approval", info.approval), ("fix", info.fix)):
        if text:
            out += textwrap.wrap(text, _WIDTH, initial_indent=f"{indent}{key:<9} ",
                                 subsequent_indent=indent + " " * 10)
    return out


def _heading(info: CodeInfo) -> str:
    return f"{info.label()}{'  [normal]' if info.normal else ''}"


def _about(info: CodeInfo, reading: str, indent: str) -> list[str]:
    lines = [f"{indent}{'table':<9} {codes.KIND_TITLES[info.kind]}"]
    if info.kind in ("hresult", "ccm", "ntstatus"):
        v = info.value & _U32
        lines.append(f"{indent}{'forms':<9} 0x{v:08X} = {v} (IIS log) = {v - (1 << 32) if v >= 1 << 31 else v} "
                     "(signed)")
    if reading:
        lines.append(f"{indent}{'read as':<9} {reading}")
    return lines


def render_text(result: Explanation) -> str:
    lines: list[str] = []
    if not result.found:
        lines.append(f"kerbtrace: {result.query!r} is in none of kerbtrace's code tables.")
        lines += [f"  {h}" for h in result.hints]
        return "\n".join(lines) + "\n"
    if len(result.matches) > 1:
        lines.append(f"{result.query} can be {len(result.matches)} codes, most likely first:")
    for i, m in enumerate(result.matches, 1):
        prefix = f"{i}. " if len(result.matches) > 1 else ""
        lines += ["", prefix + _heading(m.info)]
        lines += _about(m.info, m.reading, "   ") + _block(m.info, "   ")
        for name, code in m.results:
            lines += ["", f"   {name}: {_heading(code)}"]
            lines += _about(code, "", "     ") + _block(code, "     ")
        if m.iis is not None:
            lines += textwrap.wrap(f"{m.iis.outcome}: {m.iis.note}", _WIDTH, initial_indent="   outcome   ",
                                   subsequent_indent=" " * 13)
            if m.iis.win32_info is not None:
                lines += ["", f"   sc-win32-status: {_heading(m.iis.win32_info)}"]
                lines += _about(m.iis.win32_info, "", "     ") + _block(m.iis.win32_info, "     ")
    lines += [f"note: {h}" for h in result.hints]
    return "\n".join(lines).lstrip("\n") + "\n"


def _info_dict(info: CodeInfo) -> dict:
    d = {"kind": info.kind, "kind_title": codes.KIND_TITLES[info.kind], "value": info.value, "name": info.name,
         "label": info.label(), "normal": info.normal, "meaning": info.meaning, "approval": info.approval,
         "fix": info.fix}
    if info.kind in ("hresult", "ccm", "ntstatus"):
        d["hex"] = f"0x{info.value & _U32:08X}"
    return d


def to_json(result: Explanation) -> dict:
    """The ``kerbtrace-explain/1`` document (docs/codes.md)."""
    matches = []
    for m in result.matches:
        d = _info_dict(m.info) | {"reading": m.reading}
        if m.results:
            d["results"] = [{"field": name} | _info_dict(code) for name, code in m.results]
        if m.iis is not None:
            d["iis"] = {"status": m.iis.status, "substatus": m.iis.substatus, "win32": m.iis.win32,
                        "outcome": m.iis.outcome, "normal": m.iis.normal, "note": m.iis.note,
                        "label": m.iis.label(),
                        "win32_code": None if m.iis.win32_info is None else _info_dict(m.iis.win32_info)}
        matches.append(d)
    return {"format": "kerbtrace-explain/1", "query": result.query, "found": result.found, "matches": matches,
            "hints": result.hints}


def run(code: list[str], as_json: bool, out, err) -> int:
    """The `explain` subcommand: 0 found, 1 in no table, 2 not a code in any notation."""
    text = " ".join(code)
    try:
        result = explain(text)
    except ExplainError as exc:
        print(f"kerbtrace explain: error: {exc}", file=err)
        print("usage: kerbtrace explain CODE (see kerbtrace explain --help for the notations)", file=err)
        return EXIT_MALFORMED
    if as_json:
        json.dump(to_json(result), out, indent=2)
        out.write("\n")
    else:
        (out if result.found else err).write(render_text(result))
    return EXIT_FOUND if result.found else EXIT_UNKNOWN
