"""A fitted :class:`~shoprec.scenarios.Recommender` as a versioned artifact: a folder with a JSON
manifest and arrays (npz, Parquet, LightGBM's text model format). Nothing is pickled, so a server can
load an artifact it did not write without running code from it.

Layout::

    manifest.json           format, version, creation time, data fingerprint, scenarios, files
    ids/users.parquet       external ids in index order
    ids/items.parquet
    items.parquet           the item table (one row per item index), when the shop has one
    models/<n>/             one fitted strategy each (Strategy.save: manifest.json + arrays.npz)
    facts/<n>.npz           per-item facts (stock, price, category, popularity, purchases …)
    scenarios/<name>.npz    the scenario's near-duplicate matrix and its ranker's feature arrays
                            (co-occurrence embedding, each user's last item), when it has them
    rankers/<name>.txt      the scenario's LightGBM ranker, when it has one

:func:`save_recommender` writes into a temporary sibling folder and renames it into place, so a
reader never sees half an artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import __version__
from ..data import IdMap, ShopData
from ..data.dataset import empty_events
from ..exceptions import ArtifactError
from ..strategies.base import Strategy
from .config import ScenarioConfig
from .facts import ItemFacts

FORMAT = 1
KIND = "shoprec-recommender"

_FACT_ARRAYS = ("popularity", "trend", "days_since_last", "days_since_first", "price", "category", "in_stock",
                "repurchase_days")


def fingerprint(data: ShopData) -> str:
    """A short hash of what a model was trained on: the item ids, user count and event count."""
    h = hashlib.sha256()
    h.update(f"{data.n_users}:{data.n_items}:{data.n_events}:".encode())
    for chunk in np.array_split(np.asarray(data.items.external_ids, dtype=object), max(1, data.n_items // 65536)):
        h.update("\x1f".join(map(str, chunk)).encode())
    return h.hexdigest()[:16]


def _save_sparse(prefix: str, m: sp.csr_matrix, out: dict[str, np.ndarray]) -> None:
    m = sp.csr_matrix(m)
    out[f"{prefix}.data"] = m.data
    out[f"{prefix}.indices"] = m.indices
    out[f"{prefix}.indptr"] = m.indptr
    out[f"{prefix}.shape"] = np.asarray(m.shape, np.int64)


def _load_sparse(prefix: str, z: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    return sp.csr_matrix((z[f"{prefix}.data"], z[f"{prefix}.indices"], z[f"{prefix}.indptr"]),
                         shape=tuple(z[f"{prefix}.shape"]))


def _write_ids(path: Path, ids: IdMap) -> None:
    pd.DataFrame({"id": pd.array(np.asarray(ids.external_ids, dtype=object).astype(str), dtype="string")}) \
        .to_parquet(path, index=False)


def _read_ids(path: Path) -> IdMap:
    return IdMap(pd.read_parquet(path)["id"].astype(str).to_numpy(dtype=object))


def _plain_table(table: pd.DataFrame) -> pd.DataFrame:
    """The item table with object columns as strings (Parquet needs one type per column)."""
    out = table.reset_index(drop=True).copy()
    for col in out.columns:
        if out[col].dtype == object:
            vals = out[col]
            if vals.dropna().map(lambda v: isinstance(v, bool)).all() and vals.notna().any():
                out[col] = vals.astype("boolean")
            else:
                out[col] = vals.where(vals.isna(), vals.astype(str)).astype("string")
    return out


def save_recommender(rec, path: Path, meta: Mapping[str, Any] | None = None) -> Path:
    """Write ``rec`` (fitted) to the folder ``path`` (replaced if it exists)."""
    if not rec.pipelines:
        raise ArtifactError("the recommender is not fitted; call fit(data) before save")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        _write(rec, tmp, dict(meta or {}))
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _write(rec, root: Path, meta: dict[str, Any]) -> None:
    data: ShopData = rec.data_
    (root / "ids").mkdir()
    _write_ids(root / "ids" / "users.parquet", data.users)
    _write_ids(root / "ids" / "items.parquet", data.items)
    if data.item_table is not None:
        _plain_table(data.item_table).to_parquet(root / "items.parquet", index=False)

    models: dict[str, str] = {}
    for n, (key, model) in enumerate(rec.cache_.models.items()):
        folder = f"models/{n:03d}"
        model.save(root / folder)
        models[key] = folder

    facts_list = rec.facts
    (root / "facts").mkdir()
    facts_meta = []
    for n, f in enumerate(facts_list):
        arrays = {name: getattr(f, name) for name in _FACT_ARRAYS}
        _save_sparse("purchased", f.purchased, arrays)
        np.savez(root / "facts" / f"{n}.npz", **arrays)
        facts_meta.append({"file": f"facts/{n}.npz", "n_items": f.n_items, "now": f.now,
                           "category_names": list(f.category_names)})

    scenarios = {}
    (root / "scenarios").mkdir()
    (root / "rankers").mkdir()
    for name, pipe in rec.pipelines.items():
        entry: dict[str, Any] = {
            "config": json.loads(pipe.config.model_dump_json()),
            "facts": next(i for i, f in enumerate(facts_list) if f is pipe.facts_),
            "weights": [float(w) for w in pipe.weights_],
            "notes": list(pipe.notes_),
            "validation": pipe.validation_,
            "text_index": None if pipe._text is None else next(
                k for k, m in rec.cache_.models.items() if m is pipe._text.model),
            "near_duplicates": None,
            "ranker": None,
        }
        entry["method"] = getattr(pipe, "method_", None)
        arrays: dict[str, np.ndarray] = dict(pipe.serving_arrays())
        if pipe._near_dup is not None:
            _save_sparse("near_dup", pipe._near_dup, arrays)
        if arrays:
            np.savez(root / "scenarios" / f"{name}.npz", **arrays)
            entry["arrays"] = f"scenarios/{name}.npz"
            entry["near_duplicates"] = pipe._near_dup is not None
        if pipe.ranker is not None:
            r = pipe.ranker
            (root / "rankers" / f"{name}.txt").write_text(r.booster.model_to_string())
            entry["ranker"] = {"file": f"rankers/{name}.txt", "names": r.names, "n_queries": r.n_queries,
                               "n_pairs": r.n_pairs, "positives": r.positives, "validation": r.validation,
                               "seconds": r.seconds, "similarity": bool(getattr(r, "similarity", True))}
        scenarios[name] = entry

    created = datetime.now(timezone.utc)
    fp = fingerprint(data)
    ts = data.events["timestamp"].to_numpy() if data.n_events else np.zeros(0)
    manifest = {
        "format": FORMAT,
        "kind": KIND,
        "version": meta.pop("version", None) or f"{created:%Y%m%dT%H%M%S}-{fp[:8]}",
        "created": created.isoformat(timespec="seconds"),
        "shoprec": __version__,
        "data": {"name": data.name, "n_users": data.n_users, "n_items": data.n_items, "n_events": data.n_events,
                 "fingerprint": fp, "last_timestamp": float(ts.max()) if len(ts) and (ts >= 0).all() else None,
                 "item_table": data.item_table is not None},
        "meta": meta,
        "models": models,
        "skipped": dict(rec.cache_.skipped),
        "fit_seconds": {k: round(v, 3) for k, v in rec.cache_.fit_seconds.items()},
        "scenario_fit_seconds": {k: round(v, 3) for k, v in getattr(rec, "fit_seconds_", {}).items()},
        "facts": facts_meta,
        "scenarios": scenarios,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of an artifact, checked for kind and format."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no manifest.json; not a shoprec model (write one with `shoprec train`)") \
            from None
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{path}/manifest.json is not valid JSON: {e}") from None
    if manifest.get("kind") != KIND:
        raise ArtifactError(f"{path}: manifest kind {manifest.get('kind')!r}, expected {KIND!r}")
    if manifest.get("format") != FORMAT:
        raise ArtifactError(f"{path}: artifact format {manifest.get('format')}, this shoprec reads {FORMAT}")
    return manifest


def load_recommender(path: Path):
    """Read an artifact written by :func:`save_recommender`."""
    from .engine import Recommender
    from .pipeline import ModelCache, ScenarioPipeline
    from .ranker import Ranker

    path = Path(path)
    manifest = read_manifest(path)
    try:
        users = _read_ids(path / "ids" / "users.parquet")
        items = _read_ids(path / "ids" / "items.parquet")
        table = pd.read_parquet(path / "items.parquet") if manifest["data"]["item_table"] else None
        data = ShopData(events=empty_events(0), users=users, items=items, item_table=table,
                        name=manifest["data"]["name"], meta={"artifact": manifest["version"]})
        cache = ModelCache()
        for key, folder in manifest["models"].items():
            cache.models[key] = Strategy.load(path / folder)
        cache.skipped.update(manifest.get("skipped", {}))
        cache.fit_seconds.update(manifest.get("fit_seconds", {}))
        facts_list = []
        for fm in manifest["facts"]:
            with np.load(path / fm["file"], allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            titles = None
            if table is not None and "title" in table.columns:
                titles = table["title"].astype(object).where(table["title"].notna(), None).to_numpy()
            facts_list.append(ItemFacts(
                n_items=int(fm["n_items"]), **{k: arrays[k] for k in _FACT_ARRAYS},
                category_names=list(fm["category_names"]), purchased=_load_sparse("purchased", arrays),
                now=float(fm["now"]), titles=titles))
        configs = {name: ScenarioConfig.model_validate(e["config"]) for name, e in manifest["scenarios"].items()}
        rec = Recommender(list(configs.values()))
        rec.data_ = data
        rec.cache_ = cache
        rec.fit_seconds_ = dict(manifest.get("scenario_fit_seconds", {}))
        for name, e in manifest["scenarios"].items():
            near_dup, arrays = None, {}
            if e.get("arrays"):
                with np.load(path / e["arrays"], allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                if e["near_duplicates"]:
                    near_dup = _load_sparse("near_dup", arrays)
                arrays = {k: v for k, v in arrays.items() if not k.startswith("near_dup.")}
            ranker = None
            if e["ranker"]:
                import lightgbm as lgb

                r = e["ranker"]
                booster = lgb.Booster(model_str=(path / r["file"]).read_text())
                ranker = Ranker(booster, list(r["names"]), int(r["n_queries"]), int(r["n_pairs"]),
                                float(r["positives"]), r["validation"], float(r["seconds"]),
                                bool(r.get("similarity", True)))
            rec.pipelines[name] = ScenarioPipeline.restore(
                configs[name], data, cache, facts_list[e["facts"]], weights=np.asarray(e["weights"], np.float32),
                notes=e["notes"], validation=e["validation"],
                text_model=cache.models[e["text_index"]] if e["text_index"] else None,
                near_duplicates=near_dup, ranker=ranker, method=e.get("method"), arrays=arrays)
        first = next(iter(cache.models.values()), None)
        rec._index_history(first.user_items_ if first is not None
                           else sp.csr_matrix((data.n_users, data.n_items), dtype=np.float32))
    except ArtifactError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise ArtifactError(f"{path}: the artifact is incomplete or corrupt ({type(e).__name__}: {e})") from e
    rec.manifest_ = manifest
    return rec
