"""A safe YAML loader that remembers line and column of every mapping key and list item.

Built on PyYAML's `SafeLoader` (which refuses `!!python/object` and every other language tag). Mappings
load as `LocDict`, lists as `LocList`; both know where they start and where each key / item starts, so a
rule file problem can name `file:line:column`. Floats load as `Decimal` (no binary rounding of rule
constants or weights); duplicate keys are reported instead of silently overwritten.

Before anything is composed, `load` reads the text's event stream once (libyaml's parser when PyYAML has it,
else PyYAML's own; both are iterative, ~0.3 s per MB in C) and refuses, at the first offending event:
- anchors (`&a`) and aliases (`*a`): a 500-byte file of nested aliases expands to billions of nodes
  ("billion laughs"). Rule files never need them, so they are refused (`rule-yaml-alias`), not expanded.
- nesting deeper than `MAX_DEPTH` mappings/lists (`rule-too-deep`): PyYAML's composer and constructor recurse
  once per level and raise RecursionError at about 450 levels (measured, Python 3.11's default limit).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml

__all__ = ["LocDict", "LocList", "load", "YamlProblem", "MAX_DEPTH"]

MAX_DEPTH = 100  # mappings/lists inside each other; a condition nested 32 deep needs about 70


class LocDict(dict):
    line: int = 0
    col: int = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_pos: dict[Any, tuple[int, int]] = {}
        self.value_pos: dict[Any, tuple[int, int]] = {}

    def pos(self, key: Any) -> tuple[int, int]:
        return self.key_pos.get(key, (self.line, self.col))

    def vpos(self, key: Any) -> tuple[int, int]:
        return self.value_pos.get(key, self.pos(key))


class LocList(list):
    line: int = 0
    col: int = 0

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_pos: list[tuple[int, int]] = []

    def pos(self, index: int) -> tuple[int, int]:
        return self.item_pos[index] if index < len(self.item_pos) else (self.line, self.col)


class YamlProblem(Exception):
    """A located YAML problem; `code` is "rule-yaml" unless a limit of this module was hit."""

    def __init__(self, message: str, line: int, col: int, found: str | None = None, code: str = "rule-yaml") -> None:
        super().__init__(message)
        self.message, self.line, self.col, self.found, self.code = message, line, col, found, code


_FastParser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # CSafeLoader only when PyYAML has libyaml


def _prescan(text: str) -> None:
    """Refuse anchors, aliases and deep nesting from the event stream, before any node is composed.

    A syntax error stops the scan silently: the composing loader reports it with its own wording."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_FastParser):
            line, col = event.start_mark.line + 1, event.start_mark.column + 1
            if isinstance(event, yaml.AliasEvent):
                raise YamlProblem(f'Verweis "*{event.anchor}" auf einen YAML-Anker', line, col,
                                  found=f"*{event.anchor}", code="rule-yaml-alias")
            if getattr(event, "anchor", None) is not None:
                raise YamlProblem(f'YAML-Anker "&{event.anchor}"', line, col, found=f"&{event.anchor}",
                                  code="rule-yaml-alias")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlProblem(f"mehr als {MAX_DEPTH} Ebenen ineinander geschachtelt", line, col,
                                      found=f"Ebene {depth}", code="rule-too-deep")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except (yaml.YAMLError, UnicodeError):  # e.g. a lone surrogate: libyaml cannot even encode the text
        return


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Loader(yaml.SafeLoader):
    duplicates: list[YamlProblem]

    def construct_located_mapping(self, node: yaml.MappingNode) -> LocDict:
        result = LocDict()
        result.line, result.col = _mark(node)
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, Decimal, bool)) or key is None:
                raise YamlProblem("ein Schlüssel muss einfacher Text sein", *_mark(key_node), found=repr(key))
            if key in result:
                self.duplicates.append(YamlProblem(f'doppelter Schlüssel "{key}"', *_mark(key_node), found=str(key)))
            result[key] = self.construct_object(value_node, deep=True)
            result.key_pos[key] = _mark(key_node)
            result.value_pos[key] = _mark(value_node)
        return result

    def construct_located_sequence(self, node: yaml.SequenceNode) -> LocList:
        result = LocList(self.construct_object(child, deep=True) for child in node.value)
        result.line, result.col = _mark(node)
        result.item_pos = [_mark(child) for child in node.value]
        return result

    def construct_decimal(self, node: yaml.ScalarNode) -> Decimal:
        text = self.construct_scalar(node).replace("_", "")
        try:
            return Decimal(text)
        except Exception:
            # .inf / .nan and friends: not allowed as rule constants
            raise YamlProblem("keine endliche Zahl", *_mark(node), found=text) from None


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_located_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_located_sequence)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_decimal)
# Timestamps would turn "2022-01-01" into datetime objects; keep them as text.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def _reader_problem(text: str, error: yaml.reader.ReaderError) -> YamlProblem:
    """A character YAML does not allow (control characters, e.g. U+001F), located by its position."""
    before = text[:error.position]
    line, col = before.count("\n") + 1, error.position - (before.rfind("\n") + 1) + 1
    return YamlProblem(f"Zeichen U+{error.character:04X} ist in YAML nicht erlaubt", line, col,
                       found=f"U+{error.character:04X}")


def load(text: str) -> tuple[Any, list[YamlProblem]]:
    """Parse YAML text. Returns the document and the duplicate-key problems; raises YamlProblem."""
    _prescan(text)
    try:
        loader = _Loader(text)  # PyYAML's reader checks every character here
    except yaml.reader.ReaderError as error:
        raise _reader_problem(text, error) from None
    loader.duplicates = []
    try:
        document = loader.get_single_data()
    except YamlProblem:
        raise
    except yaml.reader.ReaderError as error:
        raise _reader_problem(text, error) from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = (error.problem or error.context or "ungültiges YAML").strip()
        raise YamlProblem(problem, line, col) from None
    except yaml.YAMLError as error:
        raise YamlProblem(str(error), 1, 1) from None
    finally:
        loader.dispose()
    return document, loader.duplicates
