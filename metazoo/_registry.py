"""The learner registry: a decorator for built-ins, entry points for third-party plugins.

Three layers, each with one job: ``@register_learner`` names a class (and its variants),
the ``metazoo.learners`` entry-point group brings in other packages' learners, and the YAML
cards in ``registry/`` carry papers and published numbers (see :mod:`metazoo.cards`).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import os
import pkgutil
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from torch import nn

from metazoo.learner import FAMILIES
from metazoo.overrides import did_you_mean

__all__ = [
    "LearnerEntry",
    "PluginError",
    "register_learner",
    "unregister_learner",
    "create_learner",
    "list_learners",
    "get_learner",
    "plugin_errors",
    "build_config",
]

ENTRY_POINT_GROUP = "metazoo.learners"
#: The package whose modules are the built-in learners.
BUILTIN_PACKAGE = "metazoo.learners"
BUILTIN_PROVIDER = "metazoo"


@dataclass(frozen=True)
class LearnerEntry:
    """One registered name.

    Attributes:
        name: the registered name (``maml``, ``fomaml``, ...).
        cls: the learner class; it has a ``Config`` dataclass and ``__init__(model, config)``.
        family: ``optimization``, ``metric`` or ``model``.
        defaults: config values this name sets over ``cls.Config``'s defaults (variants differ here).
        provider: the distribution that provided it (``metazoo`` for built-ins).
        origin: ``file:line`` of the class definition, for error messages.
    """

    name: str
    cls: type
    family: str
    defaults: dict[str, Any] = field(default_factory=dict)
    provider: str = BUILTIN_PROVIDER
    origin: str = ""

    @property
    def is_builtin(self) -> bool:
        return self.provider == BUILTIN_PROVIDER


@dataclass(frozen=True)
class PluginError:
    """A plugin that could not be loaded: reported, never fatal to the others."""

    entry_point: str
    distribution: str
    error: str


_REGISTRY: dict[str, LearnerEntry] = {}
_PLUGIN_ERRORS: list[PluginError] = []
_CURRENT_PROVIDER: list[str] = [BUILTIN_PROVIDER]
_LOADED = {"builtins": False, "plugins": False}


def _origin(cls: type) -> str:
    try:
        file = inspect.getsourcefile(cls) or "?"
        line = inspect.getsourcelines(cls)[1]
        return f"{file}:{line}"
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__}"


def unregister_learner(name: str) -> None:
    """Forget the learner registered as ``name`` (test fixtures that register throwaway learners).

    Raises:
        KeyError: when no learner has that name.
    """
    if name not in _REGISTRY:
        raise KeyError(f"no learner is registered as {name!r}")
    del _REGISTRY[name]


def register_learner(name: str, *, family: str, **defaults: Any):
    """Class decorator registering a learner under ``name``; stack it to add variants.

    Example::

        @register_learner("maml", family="optimization")
        @register_learner("fomaml", family="optimization", first_order=True)
        class MAML(nn.Module): ...

    Args:
        name: the public name, lower case.
        family: one of ``optimization``, ``metric``, ``model``.
        **defaults: config values for this name that override the ``Config`` dataclass defaults.

    Raises:
        ValueError: for an unknown family, a default that is not a config field, or a name that
            another class already holds (both definitions are named).
    """
    if family not in FAMILIES:
        raise ValueError(
            f"register_learner({name!r}): family must be one of {FAMILIES}, got {family!r}"
        )

    def decorate(cls: type) -> type:
        config_cls = getattr(cls, "Config", None)
        if config_cls is None or not dataclasses.is_dataclass(config_cls):
            raise TypeError(
                f"register_learner({name!r}): {cls.__qualname__} needs a `Config` dataclass attribute"
            )
        build_config(config_cls, defaults, learner=name)  # validates the defaults now, not at use
        entry = LearnerEntry(name, cls, family, dict(defaults), _CURRENT_PROVIDER[-1], _origin(cls))
        _add(entry)
        return cls

    return decorate


def _add(entry: LearnerEntry) -> None:
    existing = _REGISTRY.get(entry.name)
    if existing is not None:
        same = (existing.cls.__module__, existing.cls.__qualname__) == (
            entry.cls.__module__,
            entry.cls.__qualname__,
        )
        if same and existing.defaults == entry.defaults:
            _REGISTRY[entry.name] = entry  # a module re-import: same definition, no conflict
            return
        raise ValueError(
            f"learner name {entry.name!r} is registered twice: first by {existing.cls.__qualname__} "
            f"({existing.origin}, package {existing.provider}), again by {entry.cls.__qualname__} "
            f"({entry.origin}, package {entry.provider}). Rename one of them."
        )
    _REGISTRY[entry.name] = entry


def build_config(config_cls: type, values: dict[str, Any], *, learner: str = "") -> Any:
    """Instantiate ``config_cls`` from ``values``, rejecting unknown keys with the list of valid ones."""
    valid = [f.name for f in dataclasses.fields(config_cls)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        hints = []
        for key in unknown:
            close = did_you_mean(key, valid)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        where = f"learner {learner!r}: " if learner else ""
        raise TypeError(
            f"{where}unknown config key {', '.join(hints)}; valid keys: {', '.join(valid)}"
        )
    return config_cls(**values)


def _load_builtins() -> None:
    if _LOADED["builtins"]:
        return
    _LOADED["builtins"] = True
    # discovered by name, as entry points are: the registry sits below the learners it loads
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(spec.submodule_search_locations), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{BUILTIN_PACKAGE}.{info.name}")


def _disabled_plugins() -> set[str]:
    raw = os.environ.get("METAZOO_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _load_plugins() -> None:
    if _LOADED["plugins"]:
        return
    _LOADED["plugins"] = True
    disabled = _disabled_plugins()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        if ep.name in disabled or dist in disabled:
            continue
        _load_plugin(ep, dist)


def _load_plugin(ep: metadata.EntryPoint, dist: str) -> None:
    before = dict(_REGISTRY)
    _CURRENT_PROVIDER.append(dist)
    try:
        obj = ep.load()
        if ep.name not in _REGISTRY:
            family = getattr(obj, "family", None)
            register_learner(ep.name, family=family or "")(obj)
        entry = _REGISTRY[ep.name]
        if entry.is_builtin:
            raise ValueError(
                f"plugin entry point {ep.name!r} would shadow the built-in learner; rename it"
            )
    except Exception as exc:  # a broken plugin is reported, never fatal to the others
        _REGISTRY.clear()
        _REGISTRY.update(before)
        error = PluginError(ep.name, dist, f"{type(exc).__name__}: {exc}")
        _PLUGIN_ERRORS.append(error)
        warnings.warn(
            f"metazoo: plugin {ep.name!r} from distribution {dist!r} failed to load ({error.error}); "
            f"fix or uninstall it, or set METAZOO_DISABLE_PLUGINS={ep.name}",
            RuntimeWarning,
            stacklevel=3,
        )
    finally:
        _CURRENT_PROVIDER.pop()


def _ensure_loaded() -> None:
    _load_builtins()
    _load_plugins()


def list_learners(family: str | None = None) -> list[str]:
    """Registered learner names (built-ins and plugins), sorted; optionally one family only."""
    _ensure_loaded()
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)


def get_learner(name: str) -> LearnerEntry:
    """The registry entry for ``name``; an unknown name is an error suggesting close ones."""
    _ensure_loaded()
    if name not in _REGISTRY:
        close = did_you_mean(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(
            f"unknown learner {name!r}.{hint} Known learners: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def plugin_errors() -> list[PluginError]:
    """Plugins that failed to load in this process."""
    _ensure_loaded()
    return list(_PLUGIN_ERRORS)


def create_learner(name: str, model: nn.Module | None = None, **config: Any) -> nn.Module:
    """Build the learner registered as ``name`` around ``model``.

    Args:
        name: a registered name (see :func:`list_learners`).
        model: the network, used as given and never copied: after
            ``learner.meta_loss(batch)[0].backward()`` the meta-gradient sits in its parameters'
            ``.grad``. None for learners that build their own network.
        **config: overrides of the learner's config; unknown keys are an error listing valid ones.
    """
    entry = get_learner(name)
    cfg = build_config(entry.cls.Config, {**entry.defaults, **config}, learner=name)
    learner = entry.cls(model, cfg)
    learner.registered_name = name
    return learner


def card_path_of(entry: LearnerEntry) -> Path | None:
    """Where a plugin ships its card (class attribute ``card_path``), if it says."""
    path = getattr(entry.cls, "card_path", None)
    return Path(path) if path else None
