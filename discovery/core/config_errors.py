"""pydantic's validation errors → the one line an operator reads (DESIGN §7, issue 15).

pydantic words its errors for programmers ("Input should be a valid tuple", "Field required",
"Extra inputs are not permitted") and lists them in field order, so a misspelt key could hide
behind "(and 1 more)" while the line blamed the key it left unset. Here:

- the error shown first is the one most likely to be the cause: an unknown key (with a
  did-you-mean over the field names the model has at that path), then the rest in order;
- every message is in our words and names the YAML path with list indexes (`aws[0].regions`);
- a YAML boolean where text was expected (`discovery_group: yes`, `regions: [no]`) says that
  YAML read it as true/false and to quote it.

Pure: errors and the model class in, a string out.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["describe", "did_you_mean", "first_error", "render_errors", "yaml_path"]

Loc = Sequence[int | str]

# pydantic's own markers in a location (unions, validators); they are not config keys.
_INTERNAL_PARTS = frozenset({"str", "list[str]", "int", "float", "bool"})
# What a type error means, in the words of the config file.
_TYPE_WORDS: Mapping[str, str] = {
    "string_type": "must be text (a string)",
    "string_too_short": "must not be empty",
    "tuple_type": "must be a list, e.g. [a, b]",
    "list_type": "must be a list, e.g. [a, b]",
    "dict_type": "must be a mapping of key: value",
    "mapping_type": "must be a mapping of key: value",
    "model_type": "must be a mapping of settings (key: value)",
    "model_attributes_type": "must be a mapping of settings (key: value)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "missing": "is required",
}
_BOUND_WORDS: Mapping[str, tuple[str, str]] = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be more than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
}


def yaml_path(loc: Loc) -> str:
    """pydantic's error location → the YAML path a user reads: `aws[0].external_id`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith("function-") or part in _INTERNAL_PARTS:
            continue
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold: `tuple[Matcher, ...]` → [Matcher]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType) or origin is Union:
        for arg in get_args(annotation):
            found.extend(_models_in(arg))
    return found


def model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model whose fields sit at `loc` (`("aws", 0)` → Matcher), None past the models."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue  # a list index keeps the element model
        field = current.model_fields.get(part)
        if field is None:
            return None
        inner = _models_in(field.annotation)
        current = inner[0] if inner else None
    return current


def did_you_mean(key: str, known: Sequence[str]) -> str:
    """The closest known key to a misspelt one (`region` → `regions`), or ""."""
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not close:
        lowered = {k.lower(): k for k in known}
        return lowered.get(key.lower(), "")
    return close[0]


def _unknown_key(error: Mapping[str, Any], model: type[BaseModel] | None) -> str:
    loc = list(error["loc"])
    key = str(loc[-1]) if loc else ""
    parent = model_at(model, loc[:-1]) if model is not None else None
    known = sorted(parent.model_fields) if parent is not None else []
    guess = did_you_mean(key, known) if known else ""
    if guess:
        return f"is not a known setting; did you mean {guess!r}?"
    if known:
        return f"is not a known setting here (known: {', '.join(known)})"
    return "is not a known setting (check its spelling and indentation)"


def describe(error: Mapping[str, Any], model: type[BaseModel] | None = None) -> str:
    """One pydantic error → what is wrong, in the config's words (no path)."""
    kind = str(error.get("type", ""))
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(error, model)
    if isinstance(value, bool) and kind in {"string_type", "literal_error"}:
        word = "true" if value else "false"
        return (
            f"YAML read this value as the boolean {word} (yes/no/on/off/true/false are "
            'booleans in YAML); put it in quotes to mean the text, e.g. "yes"'
        )
    if kind in {"tuple_type", "list_type"} and isinstance(value, str) and value:
        key = next((p for p in reversed(list(error["loc"])) if isinstance(p, str)), "key")
        return f"must be a list; write {key}: [{value}]"
    if kind == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected']}"
    if kind in _BOUND_WORDS:
        name, words = _BOUND_WORDS[kind]
        if name in ctx:
            return words.format(ctx[name])
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    message = str(error.get("msg", "is not valid"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    # Anything pydantic words itself that we have not mapped still reads as a config line.
    return message.replace("Input should be", "must be").replace("Field required", "is required")


def first_error(errors: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The error to show first: an unknown key (often the cause of a "required" one), else
    the first in pydantic's order."""
    for error in errors:
        if error.get("type") == "extra_forbidden":
            return error
    return errors[0]


def render_errors(
    errors: Sequence[Mapping[str, Any]],
    *,
    source: str,
    model: type[BaseModel] | None = None,
    where: Callable[[Loc], Loc] = lambda loc: loc,
) -> str:
    """All of a validation's errors → one line: `SOURCE: PATH: WHAT (and N more)`."""
    first = first_error(errors)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {yaml_path(where(first['loc']))}: {describe(first, model)}{more}"
