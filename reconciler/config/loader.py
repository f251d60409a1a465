"""Loading a site file, with every problem at its file:line:col.

The YAML is read event by event (ruamel.yaml's parser; its C version when
ruamel.yaml.clib is installed) into ``CommentedMap``/``CommentedSeq`` whose ``lc`` holds the
line and column of every key, value and item. ruamel's own round-trip loader keeps the same
positions but costs ~40 ms for a 150-line file; building from events costs ~3 ms, which is
what lets CI validate a fleet in seconds. Reading events ourselves also lets us report every
duplicate key, anchor and too-deep nesting with its position instead of stopping at the
first, and resolve plain scalars with the YAML 1.2 core schema only (no dates, no octal
surprises): a value is a mapping, list, string, number, bool or null.

Pydantic's error ``loc`` tuples and the rules' paths are mapped back to those positions.
"""

from __future__ import annotations

import difflib
import math
import re
import stat
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    StreamEndEvent,
)

try:
    from _ruamel_yaml import CParser as _CParser  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - ruamel.yaml.clib is a dependency
    _CParser = None

from reconciler.config.model import Site

MAX_BYTES = 1024 * 1024
"""Largest site file accepted, bytes (1 MB); real ones are a few kB."""
MAX_DEPTH = 20
"""Deepest nesting of mappings and lists accepted; real site files need 6."""

_ANCHOR_MSG = "anchors and aliases are not allowed in site files; write the values out"
_STR_TAGS = (None, "!", "tag:yaml.org,2002:str")
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a site file, with its position (1-based)."""

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"


class SiteFileError(Exception):
    """A site file that cannot be used; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_site(path: str | Path) -> Site:
    """Load and validate a site file; raises SiteFileError listing every error.

    Warnings do not stop loading; use :func:`check_site_file` to see them.
    """
    site, problems = check_site_file(path)
    errors = [p for p in problems if p.severity == "error"]
    if site is None or errors:
        raise SiteFileError(errors)
    return site


def check_site_file(path: str | Path) -> tuple[Site | None, list[Problem]]:
    """Validate a site file: the Site (None if any error) and every error and warning."""
    name = str(path)
    text, problems = _read_text(Path(path), name)
    if text is None:
        return None, problems
    return check_site_text(text, name)


def check_site_text(text: str, name: str) -> tuple[Site | None, list[Problem]]:
    """Validate site YAML given as text; ``name`` is the file name used in problems."""
    problems = _tab_problems(text, name)
    if problems:
        return None, problems
    data, problems = _parse(text, name)
    if any(not p.message.startswith("duplicate key") for p in problems):
        return None, problems
    # Duplicate keys leave a usable document (the first value kept): check the rest too.
    duplicates = problems
    if data is None:
        return None, [Problem(name, 1, 1, "", _empty_message())]
    if not isinstance(data, Mapping):
        line, col = _own_position(data)
        msg = (
            "a site file is a mapping of sections (site:, devices:, limits:, schedule:, ...); "
            f"got {_describe(data)}"
        )
        return None, [Problem(name, line, col, "", msg)]
    try:
        site = Site.model_validate(data)
    except ValidationError as exc:
        structural = _validation_problems(exc, data, name)
        # Unknown fields mean nothing: without them the file may still validate, and then
        # the rules' problems are reported too (one run shows everything to fix).
        unknown = [tuple(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        trimmed = _without_keys(data, unknown) if unknown else None
        try:
            rest = Site.model_validate(trimmed) if trimmed is not None else None
        except ValidationError:
            rest = None
        found = duplicates + structural
        if rest is not None:
            found += _rule_problems(rest, data, name)
        found.sort(key=lambda p: (p.severity != "error", p.line, p.col))
        return None, found
    found = duplicates + _rule_problems(site, data, name)
    found.sort(key=lambda p: (p.severity != "error", p.line, p.col))
    if any(p.severity == "error" for p in found):
        return None, found
    return site, found


def _rule_problems(site: Site, data: Any, name: str) -> list[Problem]:
    # Imported here: rules imports the schedule evaluation, which imports the model.
    from reconciler.config.rules import check_rules

    return [
        _problem_at(data, name, f.loc, f.message, f.severity, f.anchor) for f in check_rules(site)
    ]


def _without_keys(data: Any, locs: list[Loc]) -> Any:
    """A copy of ``data`` without the mapping keys at ``locs`` (pydantic error locations)."""
    drop = {loc for loc in locs if loc}

    def copy(node: Any, here: Loc) -> Any:
        if isinstance(node, Mapping):
            return {k: copy(v, (*here, k)) for k, v in node.items() if (*here, k) not in drop}
        if isinstance(node, list):
            return [copy(v, (*here, i)) for i, v in enumerate(node)]
        return node

    # A schedule entry's loc carries its mode tag (schedule, 2, 'niv_chase', ...): drop it.
    tagged = {loc for loc in drop if len(loc) > 2 and loc[0] == "schedule"}
    for loc in tagged:
        drop.add((*loc[:2], *loc[3:]))
    return copy(data, ())


def read_site_yaml(text: str, name: str) -> tuple[Any, list[Problem]]:
    """The data of site YAML as Flux reads it (YAML 1.2 core scalars, no anchors, tags or
    duplicate keys) and the YAML-level problems; what the JSON Schema is checked against."""
    problems = _tab_problems(text, name)
    if problems:
        return None, problems
    return _parse(text, name)


# --------------------------------------------------------------------------- bytes and text


def _empty_message() -> str:
    return "the file is empty; a site file needs at least site, devices and limits"


def _read_text(path: Path, name: str) -> tuple[str | None, list[Problem]]:
    def fail(msg: str, line: int = 1, col: int = 1) -> tuple[None, list[Problem]]:
        return None, [Problem(name, line, col, "", msg)]

    try:
        info = path.stat()
        size = info.st_size
        if stat.S_ISDIR(info.st_mode):
            return fail("is a folder, not a site file")
        if not stat.S_ISREG(info.st_mode):
            # A FIFO would make the read wait for a writer forever, a device never end.
            return fail("not a regular file; a site file is a YAML file")
        if size > MAX_BYTES:
            return fail(
                f"file is too large ({size / 1e6:.1f} MB); a site file must be at most 1 MB"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        return fail("no such file")
    except OSError as exc:
        return fail(f"cannot read the file: {exc.strerror or exc}")
    if b"\x00" in raw:
        line, col = _byte_position(raw, raw.index(b"\x00"))
        return fail("binary file (contains NUL bytes); a site file is UTF-8 YAML text", line, col)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _byte_position(raw, exc.start)
        return fail(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8", line, col
        )
    return text.removeprefix("\ufeff"), []


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    col = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return raw.count(b"\n", 0, offset) + 1, col


_TAB_INDENT = re.compile(r"^( *)\t", re.MULTILINE)


def _tab_problems(text: str, name: str) -> list[Problem]:
    if "\t" not in text:
        return []
    problems = []
    for m in _TAB_INDENT.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        problems.append(
            Problem(name, line, len(m.group(1)) + 1, "", "tab in indentation; indent with spaces")
        )
    return problems


# --------------------------------------------------------------------------- YAML events

_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_INT_OCT = re.compile(r"^0o[0-7]+$")
_INT_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(
    r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"
    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"
)


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_NUMERIC_START = frozenset("0123456789+-.")


def _resolve_plain(value: str) -> Any:
    """A plain (unquoted) scalar under the YAML 1.2 core schema."""
    if value in _NULLS:
        return None
    first = value[0]
    if first not in _NUMERIC_START:
        return _BOOL.get(value, value)
    if _INT.match(value):
        return int(value)
    if _INT_OCT.match(value):
        return int(value[2:], 8)
    if _INT_HEX.match(value):
        return int(value[2:], 16)
    if _FLOAT.match(value):
        low = value.lower()
        if low.endswith("inf"):
            return -math.inf if low.startswith("-") else math.inf
        if low.endswith("nan"):
            return math.nan
        return float(value)
    return value


class YamlMap(dict[Any, Any]):
    """A mapping read from YAML with the 0-based (line, col) of itself, its keys and values."""

    __slots__ = ("col", "key_at", "line", "value_at")

    def __init__(self, line: int, col: int) -> None:
        super().__init__()
        self.line, self.col = line, col
        self.key_at: dict[Any, tuple[int, int]] = {}
        self.value_at: dict[Any, tuple[int, int]] = {}


class YamlSeq(list[Any]):
    """A list read from YAML with the 0-based (line, col) of itself and of each item."""

    __slots__ = ("col", "item_at", "line")

    def __init__(self, line: int, col: int) -> None:
        super().__init__()
        self.line, self.col = line, col
        self.item_at: list[tuple[int, int]] = []


class _Abort(Exception):
    """Stop reading: the document cannot be built any further."""


def _events(text: str) -> Iterator[Any]:
    """YAML events of ``text``: libyaml's C parser when installed, else ruamel's own."""
    if _CParser is None:
        yield from YAML(typ="safe", pure=True).parse(text)
        return
    parser = _CParser(text)
    try:
        while (event := parser.get_event()) is not None:
            yield event
            if isinstance(event, StreamEndEvent):
                return
    finally:
        parser.dispose()


def _tag_message(tag: str) -> str:
    short = tag.replace("tag:yaml.org,2002:", "!!")
    return f"YAML tags ({short}) are not allowed in site files; write the plain value"


def _parse(text: str, name: str) -> tuple[Any, list[Problem]]:
    problems: list[Problem] = []

    def add(mark: Any, msg: str) -> None:
        problems.append(Problem(name, mark.line + 1, mark.column + 1, "", msg))

    root: Any = None
    documents = 0
    stack: list[YamlMap | YamlSeq] = []
    # For each open mapping: the key waiting for its value and the key's position.
    pending: list[tuple[Any, Any] | None] = []

    def attach(value: Any, mark: Any) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        container = stack[-1]
        if isinstance(container, YamlSeq):
            container.append(value)
            container.item_at.append((mark.line, mark.column))
            return
        waiting = pending[-1]
        if waiting is None:  # this value is a key
            if isinstance(value, (YamlMap, YamlSeq)):
                add(mark, "a key must be a plain name, not a mapping or list")
                raise _Abort
            pending[-1] = (value, mark)
            return
        key, key_mark = waiting
        pending[-1] = None
        if key in container:
            first = container.key_at[key][0] + 1
            add(key_mark, f"duplicate key {key!r} (first at line {first}); keep one")
            return
        container[key] = value
        container.key_at[key] = (key_mark.line, key_mark.column)
        container.value_at[key] = (mark.line, mark.column)

    try:
        for event in _events(text):
            if type(event) is ScalarEvent:
                if event.anchor is not None:
                    add(event.start_mark, _ANCHOR_MSG)
                value: Any
                if event.tag not in _STR_TAGS:
                    add(event.start_mark, _tag_message(event.tag))
                    value = event.value
                elif event.tag is None and event.implicit[0] and not event.style:
                    value = _resolve_plain(event.value)
                    if value == "<<" and pending and pending[-1] is None:
                        add(event.start_mark, _ANCHOR_MSG)
                else:
                    value = event.value
                attach(value, event.start_mark)
            elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
                stack.pop()
                if isinstance(event, MappingEndEvent):
                    pending.pop()
            elif isinstance(event, CollectionStartEvent):
                mark = event.start_mark
                if event.anchor is not None:
                    add(mark, _ANCHOR_MSG)
                if event.tag is not None:
                    add(mark, _tag_message(event.tag))
                if len(stack) >= MAX_DEPTH:
                    add(mark, f"nested deeper than {MAX_DEPTH} levels; a site file needs far fewer")
                    raise _Abort
                container: YamlMap | YamlSeq
                if isinstance(event, MappingStartEvent):
                    container = YamlMap(mark.line, mark.column)
                else:
                    container = YamlSeq(mark.line, mark.column)
                attach(container, mark)
                stack.append(container)
                if isinstance(container, YamlMap):
                    pending.append(None)
            elif isinstance(event, AliasEvent):
                add(event.start_mark, _ANCHOR_MSG)
                attach(None, event.start_mark)
            elif isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    add(event.start_mark, "a site file holds one YAML document; remove '---'")
                    raise _Abort
    except _Abort:
        pass
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = f"invalid YAML: {exc.problem}"
        if exc.context:
            msg += f" ({exc.context})"
        if "unexpected ':'" in str(exc.problem):
            # `{start: 17:00}`: YAML 1.2 editors read a time there, this parser does not.
            msg += '; inside { } or [ ] quote a value that holds a colon, e.g. start: "17:00"'
        if mark is None:
            problems.append(Problem(name, 1, 1, "", msg))
        else:
            add(mark, msg)
    except (YAMLError, ValueError) as exc:
        problems.append(Problem(name, 1, 1, "", f"invalid YAML: {exc}"))
    return root, problems


# --------------------------------------------------------------------------- positions


def _own_position(node: Any) -> tuple[int, int]:
    if isinstance(node, (YamlMap, YamlSeq)):
        return node.line + 1, node.col + 1
    return 1, 1


def _walk(root: Any, loc: Loc) -> tuple[list[str | int], list[tuple[Any, str | int]], Any]:
    """Follow ``loc`` through the data, skipping segments that are not in it (union tags).

    Returns the segments kept, the (container, key) trail, and the node reached.
    """
    node = root
    kept: list[str | int] = []
    trail: list[tuple[Any, str | int]] = []
    for seg in loc:
        in_map = isinstance(node, Mapping) and not isinstance(seg, bool) and seg in node
        in_seq = isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node)
        if not (in_map or in_seq):
            continue
        trail.append((node, seg))
        kept.append(seg)
        node = node[seg]
    return kept, trail, node


def format_path(loc: Sequence[str | int]) -> str:
    """``('schedule', 2, 'params')`` -> ``schedule[2].params``."""
    out = ""
    for seg in loc:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else str(seg)
    return out


def _position(
    root: Any, trail: list[tuple[Any, str | int]], node: Any, anchor: str
) -> tuple[int, int]:
    if not trail:
        return _own_position(root)
    container, seg = trail[-1]
    if isinstance(container, YamlMap):
        scalar = not isinstance(node, (Mapping, list))
        line, col = (
            container.value_at[seg] if anchor == "value" and scalar else container.key_at[seg]
        )
    elif isinstance(container, YamlSeq) and isinstance(seg, int):
        line, col = container.item_at[seg]
    else:
        return _own_position(root)
    return line + 1, col + 1


def _problem_at(
    root: Any, name: str, loc: Loc, message: str, severity: str = "error", anchor: str = "value"
) -> Problem:
    kept, trail, node = _walk(root, loc)
    line, col = _position(root, trail, node, anchor)
    sev: Literal["error", "warning"] = "warning" if severity == "warning" else "error"
    return Problem(name, line, col, format_path(kept), message, sev)


# --------------------------------------------------------------------------- pydantic errors


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return tp


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class found by following ``loc`` (with union tags) from Site."""
    tp: Any = Site
    for seg in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            tp = next(
                (m for m in typing.get_args(tp) if _mode_of(m) == seg),
                None,
            )
            if tp is None:
                return None
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = next(
                (f for n, f in tp.model_fields.items() if seg in (n, f.alias)),
                None,
            )
            if field is None:
                return None
            tp = field.annotation
        elif origin is list and isinstance(seg, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _mode_of(member: Any) -> str | None:
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return None
    field = member.model_fields.get("mode")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return str(args[0]) if args else None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _unknown_field(loc: Loc) -> str:
    key = str(loc[-1])
    model = _model_at(loc[:-1])
    if model is None:
        return f"unknown field {key!r}"
    names = _field_names(model)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"unknown field {key!r}; did you mean {close[0]!r}?"
    return f"unknown field {key!r}; expected one of: {', '.join(names)}"


_PATTERN_WORDS = {
    r"^[a-z0-9][a-z0-9-]{0,62}$": "is not a slug: use lower-case letters, digits and - (e.g. wlce)",
    r"^[a-z][a-z0-9_]{0,62}$": "is not a device name: use lower-case letters, digits and _, "
    "starting with a letter",
    r"^[a-z][a-z0-9_]*$": "is not a register name: use lower-case letters, digits and _, "
    "starting with a letter",
}


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _message(err: Any) -> str:
    kind: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    got = _describe(err.get("input"))
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "greater_than":
        return f"must be greater than {_num(ctx['gt'])}; got {got}"
    if kind == "greater_than_equal":
        return f"must be at least {_num(ctx['ge'])}; got {got}"
    if kind == "less_than":
        return f"must be less than {_num(ctx['lt'])}; got {got}"
    if kind == "less_than_equal":
        return f"must be at most {_num(ctx['le'])}; got {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number; got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number; got {got}"
    if kind == "finite_number":
        # YAML reads .inf, .nan and numbers too large for a float (1e999) as infinity.
        return f"must be a finite number; got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false; got {got}"
    if kind == "string_type":
        return f"expected text; got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of fields; got {got}"
    if kind == "list_type":
        return f"expected a list; got {got}"
    if kind == "literal_error":
        return f"{got} is not one of: {ctx.get('expected', '')}"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"{got} {_PATTERN_WORDS.get(pattern, f'does not have the form {pattern}')}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"is too long (at most {ctx.get('max_length')} characters)"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"has too many items (at most {ctx.get('max_length')})"
    if kind in ("date_parsing", "date_from_datetime_parsing", "date_type"):
        return f"expected a date YYYY-MM-DD; got {got}"
    msg: str = err["msg"]
    return msg


def _validation_problems(exc: ValidationError, data: Any, name: str) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[str] = set()
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        kind = err["type"]
        anchor = "value"
        if kind == "missing":
            field = loc[-1]
            loc = loc[:-1]
            message = f"missing required field {field!r}"
            kept, trail, node = _walk(data, loc)
            line, col = _own_position(node) if trail else _own_position(data)
            problem = Problem(name, line, col, format_path(kept), message)
        else:
            if kind == "extra_forbidden":
                message, anchor = _unknown_field(loc), "key"
            elif kind == "union_tag_invalid":
                ctx = err.get("ctx") or {}
                tag, expected = str(ctx.get("tag")), str(ctx.get("expected_tags", ""))
                names = [t.strip(" '") for t in expected.split(",")]
                close = difflib.get_close_matches(tag, names, n=1, cutoff=0.6)
                message = f"unknown mode {tag!r}; " + (
                    f"did you mean {close[0]!r}?" if close else f"expected one of: {expected}"
                )
                loc = (*loc, "mode")
            elif kind == "union_tag_not_found":
                kept, trail, node = _walk(data, loc)
                line, col = _own_position(node)
                problem = Problem(
                    name, line, col, format_path(kept), "missing required field 'mode'"
                )
                if str(problem) not in seen:
                    seen.add(str(problem))
                    problems.append(problem)
                continue
            else:
                message = _message(err)
            problem = _problem_at(data, name, loc, message, "error", anchor)
        # A value failing a union (e.g. a number or a percentage) fails every member at the
        # same place: the first member's message is the one to show.
        where = f"{problem.line}:{problem.col}:{problem.path}"
        if where in seen:
            continue
        seen.add(where)
        problems.append(problem)
    return problems


__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "Problem",
    "SiteFileError",
    "check_site_file",
    "check_site_text",
    "format_path",
    "load_site",
    "read_site_yaml",
]
