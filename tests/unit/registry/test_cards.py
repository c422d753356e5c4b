"""Cards: the schema check, its messages, and the one-to-one rule between built-ins and cards."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metazoo import _registry
from metazoo.cards import (
    CardError,
    check_card,
    learner_card,
    list_benchmark_cards,
    list_learner_cards,
    registry_dir,
)

GOOD = {
    "name": "toy",
    "family": "metric",
    "title": "A toy",
    "authors": "Ada Lovelace, Alan Turing",
    "venue": "NeurIPS",
    "year": 2020,
    "model": "embedding",
    "tasks": ["classification"],
    "bibtex": "@inproceedings{toy, title={A toy}}",
    "results": {
        "omniglot-5w1s": {
            "value": 98.1,
            "metric": "accuracy",
            "source": "Table 1",
            "verified": True,
        }
    },
}


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_good_card_passes(tmp_path):
    kind, data = check_card(write(tmp_path, GOOD))
    assert kind == "learner" and data["name"] == "toy"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"year": "2020"}, r"toy.yaml: field 'year' must be int, got str '2020'"),
        (
            {"family": "bayesian"},
            r"field 'family' has 'bayesian'; expected one of \['optimization'",
        ),
        ({"tasks": ["ranking"]}, r"field 'tasks' has 'ranking'"),
        ({"bibtex": "title = x"}, r"field 'bibtex' must hold a BibTeX entry"),
        ({"paper": "x"}, r"unknown field\(s\) \['paper'\]"),
        (
            {"results": {"omniglot-5w1s": {"value": 1.0}}},
            r"results.omniglot-5w1s: missing required field 'metric'",
        ),
        (
            {
                "results": {
                    "x": {"value": True, "metric": "accuracy", "source": "s", "verified": True}
                }
            },
            r"'value' must be int or float, got bool",
        ),
    ],
)
def test_malformed_card_names_file_and_field(tmp_path, change, message):
    with pytest.raises(CardError, match=message):
        check_card(write(tmp_path, {**GOOD, **change}))


def test_missing_field_and_bad_yaml(tmp_path):
    data = dict(GOOD)
    del data["venue"]
    with pytest.raises(CardError, match="missing required field 'venue'"):
        check_card(write(tmp_path, data))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(CardError, match=r"bad.yaml: not valid YAML"):
        check_card(bad)


def test_every_builtin_learner_has_a_card_and_every_card_a_learner():
    _registry._load_builtins()
    builtins = sorted(n for n, e in _registry._REGISTRY.items() if e.is_builtin)
    assert builtins == list_learner_cards()
    for name in builtins:
        card = yaml.safe_load((registry_dir() / "learners" / f"{name}.yaml").read_text())
        assert card["family"] == _registry._REGISTRY[name].family, (
            f"{name}: card family differs from registration"
        )


def test_shipped_benchmark_cards_validate():
    names = list_benchmark_cards()
    assert {"omniglot-5w1s", "sinusoid"} <= set(names)


def test_card_config_key_the_learner_does_not_take_is_an_error(monkeypatch):
    """build_learner passes the card's config whole: a typo there must fail, not vanish."""
    from metazoo import build, build_learner

    card = {**build.learner_card("protonet"), "config": {"distanse": "cosine"}}
    monkeypatch.setattr(build, "learner_card", lambda name: card)
    with pytest.raises(
        TypeError, match=r"unknown config key 'distanse' \(did you mean 'distance'\?\)"
    ):
        build_learner("protonet", "omniglot-5w1s")


@pytest.mark.parametrize(
    "bench,inner_lr,steps,test_steps",
    [
        ("omniglot-5w1s", 0.4, 1, 3),
        ("omniglot-20w1s", 0.1, 5, None),
        ("miniimagenet-5w1s", 0.01, 5, 10),
    ],
)
def test_build_learner_applies_the_papers_settings_for_the_benchmark(
    bench, inner_lr, steps, test_steps
):
    """MAML's card carries Finn et al.'s inner loop per benchmark; explicit config still wins."""
    from metazoo import build_learner

    config = build_learner("maml", bench).config
    assert (config.inner_lr, config.inner_steps, config.test_inner_steps) == (
        inner_lr,
        steps,
        test_steps,
    )
    assert build_learner("maml", bench, inner_lr=0.05).config.inner_lr == 0.05


def test_benchmark_config_must_be_a_mapping():
    from metazoo.cards import CardError, learner_card, validate_learner_card

    card = {**learner_card("maml"), "benchmark_config": {"omniglot-5w1s": 0.4}}
    with pytest.raises(CardError, match=r"benchmark_config.omniglot-5w1s must be a mapping"):
        validate_learner_card(card, "maml.yaml")


def _plain(value):
    """YAML gives lists where a Config default may be a tuple: compare them as lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _defaults(name: str) -> dict:
    """The config learner ``name`` gets without a card: its Config defaults, then its variant's."""
    import dataclasses

    entry = _registry.get_learner(name)
    values = {
        f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(entry.cls.Config)
    }
    return {**values, **entry.defaults}


def _card_sections(name: str) -> list[tuple[str, dict]]:
    card = learner_card(name)
    sections = [("config", card.get("config") or {})]
    for bench, config in (card.get("benchmark_config") or {}).items():
        sections.append((f"benchmark_config.{bench}", config))
    return sections


@pytest.mark.parametrize("name", list_learner_cards())
def test_every_card_config_key_is_a_field_of_the_learners_config(name):
    fields = set(_defaults(name))
    for section, config in _card_sections(name):
        unknown = sorted(set(config) - fields)
        assert not unknown, (
            f"registry/learners/{name}.yaml: {section} has {unknown}, not fields of "
            f"{_registry.get_learner(name).cls.__name__}.Config ({sorted(fields)})"
        )


@pytest.mark.parametrize("name", list_learner_cards())
def test_cards_carry_paper_settings_not_copies_of_the_defaults(name):
    defaults = _defaults(name)
    copies = {
        key: value
        for key, value in (learner_card(name).get("config") or {}).items()
        if key in defaults and _plain(value) == _plain(defaults[key])
    }
    assert not copies, f"registry/learners/{name}.yaml: config restates the defaults {copies}"


def test_card_benchmark_keys_name_benchmark_cards():
    known = set(list_benchmark_cards())
    for name in list_learner_cards():
        card = learner_card(name)
        for section in ("benchmark_config", "results"):
            unknown = sorted(set(card.get(section) or {}) - known)
            assert not unknown, f"registry/learners/{name}.yaml: {section} names {unknown}"
