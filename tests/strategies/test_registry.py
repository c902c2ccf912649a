"""The strategy registry imports a strategy's module on first use; slow fits are progress steps."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from shoprec import progress
from shoprec.strategies import STRATEGIES, Strategy, StrategyConfig, make_strategy, register
from shoprec.strategies.base import BUILTIN_STRATEGIES
from shoprec.testing import tiny_shop

HEAVY = ["scipy.linalg", "sklearn", "torch", "implicit", "sentence_transformers", "lightgbm"]


def imported_after(code: str) -> dict:
    """Which strategy modules and heavy libraries a fresh interpreter has imported after ``code``."""
    probe = (code + "\nimport sys, json\n"
             "print(json.dumps({'modules': sorted(m for m in sys.modules if m.startswith('shoprec.strategies.')),"
             f" 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_importing_the_package_imports_no_strategy_module():
    got = imported_after("from shoprec.strategies import STRATEGIES, make_strategy\nnames = sorted(STRATEGIES)\n"
                         "assert 'ease' in STRATEGIES and len(STRATEGIES) == len(names)")
    assert got["modules"] == ["shoprec.strategies.base", "shoprec.strategies.topk"]
    assert got["heavy"] == []


def test_a_strategy_is_imported_when_it_is_asked_for():
    got = imported_after("from shoprec.strategies import make_strategy\nmake_strategy('popularity')")
    assert "shoprec.strategies.popularity" in got["modules"] and "shoprec.strategies.ease" not in got["modules"]
    assert "scipy.linalg" not in got["heavy"]


def test_every_shipped_name_resolves_to_its_class():
    for name, module in BUILTIN_STRATEGIES.items():
        cls = STRATEGIES[name]
        assert cls.name == name and cls.__module__ == f"shoprec.strategies.{module}"
    assert dict(STRATEGIES.items()).keys() == set(BUILTIN_STRATEGIES)
    from shoprec.strategies import EASEStrategy, SASRecConfig

    assert STRATEGIES["ease"] is EASEStrategy and STRATEGIES["sasrec"].Config is SASRecConfig
    with pytest.raises(ImportError):
        from shoprec.strategies import NoSuchStrategy  # noqa: F401


def test_plug_ins_register_and_names_stay_unique():
    class EchoStrategy(Strategy):
        name = "test_echo"
        Config = StrategyConfig

        def _fit(self, data):
            pass

        def _score(self, queries):
            return np.zeros((len(queries), self.n_items_), np.float32)

        def _state(self):
            return {}

        def _set_state(self, state):
            pass

    try:
        register(EchoStrategy)
        assert "test_echo" in STRATEGIES and make_strategy("test_echo").name == "test_echo"
        assert "test_echo" in list(STRATEGIES)
    finally:
        STRATEGIES._classes.pop("test_echo", None)

    class FakePopularity(EchoStrategy):
        name = "popularity"

    with pytest.raises(ValueError, match="registered twice"):
        register(FakePopularity)


@pytest.fixture(scope="module")
def shop():
    return tiny_shop(n_users=60, n_items=30)


def steps_of(fit) -> progress.Recorder:
    rec = progress.Recorder()
    with progress.reporting(rec):
        fit()
    return rec


def test_als_and_bpr_iterations_are_steps(shop):
    rec = steps_of(lambda: make_strategy("als", factors=4, iterations=6).fit(shop))
    (step,) = rec.named("als:")
    assert step["total"] == 6 and step["done"] == 6 and step["unit"] == "iteration"
    rec = steps_of(lambda: make_strategy("bpr", factors=4, iterations=5, num_threads=1).fit(shop))
    (step,) = rec.named("bpr:")
    assert step["total"] == 5 and step["done"] == 5


def test_item_knn_blocks_and_ease_inverse_are_steps(shop):
    rec = steps_of(lambda: make_strategy("item_knn", block_size=8).fit(shop))
    (step,) = rec.named("item_knn:")
    assert step["total"] == shop.n_items == step["done"] and step["advances"] == -(-shop.n_items // 8)
    rec = steps_of(lambda: make_strategy("ease").fit(shop))
    assert rec.named("ease: inverting") and rec.steps[0]["failed"] is False


def test_embedding_encoding_advances_in_chunks(monkeypatch, shop):
    from shoprec.strategies import content

    class FakeModel:
        def encode(self, texts, **kw):
            return np.ones((len(texts), 3), np.float32)

    monkeypatch.setattr(content, "_load_model", lambda path: FakeModel())
    monkeypatch.setattr(content, "resolve_model_path", lambda model: model)
    monkeypatch.setattr(content, "ENCODE_CHUNK", 7)
    pytest.importorskip("torch")
    rec = steps_of(lambda: make_strategy("content_embedding").fit(shop))
    (step,) = rec.named("content_embedding: encoding")
    assert step["total"] == step["done"] == shop.n_items and step["unit"] == "text"  # distinct titles
    assert step["advances"] == -(-shop.n_items // 7)
