"""A config file's bytes → the YAML document, refusing what PyYAML would let through silently.

`yaml.safe_load` keeps the last of two equal keys (a second `aws:` block replaces the first
without a word), and a binary or Latin-1 file ends in a codec traceback. Here a duplicate key
is an error naming both lines, and a file that is not UTF-8 text is one line that says so.

Pure: bytes or text in, data out; every refusal is a `ConfigYAMLError` whose text is the
problem without the file name (the caller prefixes it).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode

__all__ = ["ConfigYAMLError", "decode_config", "load_yaml"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
# A NUL byte in the first few KiB: an image, an archive, a UTF-16 file — not a YAML config.
_BINARY_SNIFF = 8192


class ConfigYAMLError(ValueError):
    """The file is not a YAML config we can read; `str()` is the problem and its fix."""


def decode_config(data: bytes) -> str:
    """UTF-8 (a BOM is allowed) → text; a binary or non-UTF-8 file is a ConfigYAMLError."""
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise ConfigYAMLError(
            "is a binary file, not YAML text (it holds NUL bytes); pass the YAML config file"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigYAMLError(
            f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); "
            "save the file as UTF-8"
        ) from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (merge keys `<<` may override)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader's own error says so below
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise ConfigYAMLError(
                    f"duplicate key {key!r} at line {line} (first at line {first}); "
                    "YAML would keep only the last one: merge them or remove one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> object:
    """YAML text → data, with duplicate keys refused and PyYAML's errors as one line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigYAMLError(f"broken YAML{where}: {problem}") from None
    except RecursionError:
        # PyYAML composes nested collections recursively: a few hundred levels exhaust it.
        raise ConfigYAMLError("broken YAML: nested too deeply") from None
