"""Typed ``key=value`` settings: parse text as YAML and check it against a dataclass's field types.

One parser for every place settings arrive as text or loose YAML: ``metazoo train`` overrides
(``inner_lr=0.4 steps=500``), suite files (``train: {lr: 1e-3}``) and configs read back from JSON
checkpoints. Numbers in exponent form without a dot (``1e-3``) are floats here, as in YAML 1.2,
although PyYAML (YAML 1.1) reads them as strings. Depends on nothing else in metazoo.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any

import yaml

__all__ = [
    "coerce",
    "convert",
    "did_you_mean",
    "field_docs",
    "load_value",
    "load_yaml_text",
    "split_overrides",
    "typed_values",
]

#: YAML 1.2 floats, including ``1e-3`` and ``5E+2`` that YAML 1.1 reads as strings.
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def did_you_mean(word: str, known: Any, n: int = 1) -> list[str]:
    """The names of ``known`` closest to ``word`` (a misspelt key, learner or benchmark), best
    first; empty when none is close."""
    return difflib.get_close_matches(word, list(known), n=n, cutoff=0.6 if n == 1 else 0.5)


def field_docs(cls: type) -> dict[str, str]:
    """Field name -> the first sentence of its ``#:`` comment in dataclass ``cls``'s source (the
    convention of every config here); fields of base classes included. Empty without source."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        body = ast.parse(source).body[0]
        for node in getattr(body, "body", []):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                comment = []
                row = node.lineno - 2
                while row >= 0 and lines[row].strip().startswith("#:"):
                    comment.insert(0, lines[row].strip()[2:].strip())
                    row -= 1
                if comment:
                    text = " ".join(comment)
                    docs[node.target.id] = text.split(". ")[0].rstrip(".")
    return docs


def load_value(text: str) -> Any:
    """``text`` parsed as one YAML value (``1e-3`` a float); unparsable text stays a string."""
    if text == "":
        return ""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return text


def load_yaml_text(text: str, where: str) -> Any:
    """A YAML document read with this grammar (``1e-3`` a float), from file ``where``.

    Raises:
        ValueError: malformed YAML, naming ``where``, the line and the column
            (``suite.yaml:3:7: expected ',' or ']' ...; fix the YAML there``).
    """
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ValueError(f"{at}: malformed YAML: {problem}; fix the YAML there") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: malformed YAML: {exc}; fix the YAML there") from None


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _convert_sequence(value: Any, hint: Any, args: tuple) -> tuple[bool, Any]:
    if not isinstance(value, (list, tuple)):
        return False, value
    inner = args[0] if args and args[-1] is not Ellipsis or len(args) == 2 else Any
    items = [convert(v, inner) for v in value]
    kind = tuple if (typing.get_origin(hint) or hint) is tuple else list
    return all(ok for ok, _ in items), kind(v for _, v in items)


def convert(value: Any, hint: Any) -> tuple[bool, Any]:
    """``(ok, converted)``: whether ``value`` fits the type ``hint``, and the value in that type.

    ``int`` fits ``float`` (converted); a numeric string such as ``"1e-3"`` fits ``float``; lists
    fit tuples (converted); ``bool`` never fits ``int``. Types it cannot check are accepted.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        results = [convert(value, option) for option in args]
        return next(((True, v) for ok, v in results if ok), (False, value))
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return True, float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if hint is str:
        return isinstance(value, str), value
    if origin in (tuple, list) or hint in (tuple, list):
        return _convert_sequence(value, hint, args)
    if origin is dict or hint is dict:
        return isinstance(value, dict), value
    if origin is typing.Literal:
        return value in args, value
    return True, value  # a type we cannot check: let the dataclass decide


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against ``hint`` and converted; text is parsed as YAML first.

    A ``str`` field takes text as it is written.

    Raises:
        TypeError: ``"key='ten': expected int, got str"``.
    """
    parsed = load_value(value) if isinstance(value, str) else value
    if hint is str and isinstance(value, str):
        parsed = value
    ok, converted = convert(parsed, hint)
    if not ok:
        raise TypeError(
            f"{key}={value!r}: expected {_type_name(hint)}, got {type(parsed).__name__}"
        )
    return converted


def typed_values(
    cls: type | Mapping[str, Any], values: Mapping[str, Any], where: str | None = None
) -> dict[str, Any]:
    """``values`` converted to dataclass ``cls``'s field types (lists to tuples, ``1e-3`` to float).

    Args:
        cls: a dataclass whose type hints name each field's type, or a mapping name -> type.
        values: field name -> value (parsed YAML or JSON); unknown names pass through unchecked.
        where: where the values come from; when given, a value of the wrong type raises a
            ``TypeError`` naming it (``suite.yaml: train.lr='fast': expected float, got str``),
            otherwise it passes through for the dataclass to judge.
    """
    hints = _hints(cls)
    if where is None:
        return {k: convert(v, hints.get(k, Any))[1] for k, v in values.items()}
    try:
        return {k: coerce(k, v, hints.get(k, Any)) for k, v in values.items()}
    except TypeError as exc:
        raise TypeError(f"{where}: {exc}") from None


def _hints(target: type | Mapping[str, Any]) -> dict[str, Any]:
    """Field name -> type of a dataclass, or the mapping itself when given one."""
    return dict(target) if isinstance(target, Mapping) else typing.get_type_hints(target)


def split_overrides(
    pairs: list[str] | list[tuple[str, Any]],
    targets: Mapping[str, type | Mapping[str, Any]],
    labels: Mapping[str, str] | None = None,
    what: str = "setting",
) -> dict[str, dict[str, Any]]:
    """Sort ``key=value`` pairs among dataclasses by field name, each value type-checked.

    Args:
        pairs: ``["inner_lr=0.4", "train.steps=500"]`` (or ``(key, value)`` pairs, values typed
            already); ``target.key`` picks a target when two share a field name.
        targets: target name -> dataclass, e.g. ``{"learner": MAML.Config, "train": TrainConfig}``,
            or -> a mapping of field name to type (``{"ways": int}``).
        labels: target name -> how error messages name it (default: the target name).
        what: a word for the settings in error messages.

    Returns:
        target name -> {field: typed value}, one entry per target.

    Raises:
        ValueError: a pair without ``=``.
        TypeError: an unknown or ambiguous key (listing the valid ones), or a value of the wrong type.
    """
    hints = {name: _hints(target) for name, target in targets.items()}
    found: dict[str, dict[str, Any]] = {name: {} for name in targets}
    for pair in pairs:
        key, sep, text = (pair[0], "=", pair[1]) if isinstance(pair, tuple) else pair.partition("=")
        if not sep or not key:
            raise ValueError(f"override {pair!r} is not key=value (e.g. lr=0.001 or steps=500)")
        prefix, dot, field = key.partition(".")
        if not (dot and prefix in targets):
            field = key
        owners = [prefix] if dot and prefix in targets else list(targets)
        owners = [n for n in owners if field in hints[n]]
        if len(owners) != 1:
            raise _unknown_key(key, owners, hints, labels or {}, what)
        found[owners[0]][field] = coerce(key, text, hints[owners[0]][field])
    return found


def _unknown_key(
    key: str, owners: list[str], hints: dict[str, dict], labels: Mapping[str, str], what: str
) -> TypeError:
    if len(owners) > 1:
        spelled = " or ".join(f"{o}.{key}=..." for o in owners)
        return TypeError(f"{key!r} is both a {' and a '.join(owners)} {what}: write {spelled}")
    takes = "; ".join(
        f"{labels.get(name, name)} takes: {', '.join(fields)}" for name, fields in hints.items()
    )
    close = did_you_mean(key.rpartition(".")[2], {k for fields in hints.values() for k in fields})
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return TypeError(f"unknown key {key!r}{hint}; {takes}")
