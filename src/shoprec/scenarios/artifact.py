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
    scenarios/<name>.npz    what the scenario's stages learned, as ``<stage key>/<array>``: the rules'
                            near-duplicate matrix, the ranker (LightGBM's text format as bytes, its
                            training summary as JSON bytes, the co-occurrence embedding and each
                            user's last item), a policy's state

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

FORMAT = 2
#: formats this version reads (1: before the stages kept their own state)
READS = (1, 2)
KIND = "shoprec-recommender"

_FACT_ARRAYS = ("popularity", "trend", "days_since_last", "days_since_first", "price", "category", "in_stock",
                "repurchase_days")
#: saved since the consumer signals; a model saved before has none (NaN: unknown)
_FACT_OPTIONAL = ("return_rate", "poor_review_rate", "late_rate", "delivery_days", "late_risk")


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


def read_user_ids(model: Path) -> IdMap:
    """The user ids a saved model holds (without loading the model)."""
    return _read_ids(Path(model) / "ids" / "users.parquet")


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
        arrays = {name: getattr(f, name) for name in _FACT_ARRAYS + _FACT_OPTIONAL}
        _save_sparse("purchased", f.purchased, arrays)
        np.savez(root / "facts" / f"{n}.npz", **arrays)
        facts_meta.append({"file": f"facts/{n}.npz", "n_items": f.n_items, "now": f.now,
                           "category_names": list(f.category_names)})

    scenarios = {}
    (root / "scenarios").mkdir()
    for name, pipe in rec.pipelines.items():
        entry: dict[str, Any] = {
            "config": json.loads(pipe.config.model_dump_json()),
            "facts": next(i for i, f in enumerate(facts_list) if f is pipe.facts_),
            "weights": [float(w) for w in pipe.weights_],
            "notes": list(pipe.notes_),
            "validation": pipe.validation_,
            "text_index": None if pipe.text_ is None else next(
                k for k, m in rec.cache_.models.items() if m is pipe.text_.model),
            "method": getattr(pipe, "method_", None),
            "training_filters": [r.as_dict() for r in getattr(pipe, "filter_reports_", [])],
        }
        states = pipe.stage_states()
        if states:
            arrays = {f"{stage}/{key}": value for stage, st in states.items() for key, value in st.items()}
            np.savez(root / "scenarios" / f"{name}.npz", **arrays)
            entry["stages"] = {"file": f"scenarios/{name}.npz", "keys": sorted(states)}
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
    if manifest.get("format") not in READS:
        raise ArtifactError(f"{path}: artifact format {manifest.get('format')}, this shoprec reads "
                            f"{', '.join(map(str, READS))}: train it again with `shoprec train`")
    return manifest


def _stage_states(path: Path, entry: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """Each stage's saved arrays by stage key; format 1 kept the rules' near-duplicates and the
    ranker's arrays under fixed names and its model in ``rankers/<name>.txt``."""
    states: dict[str, dict[str, np.ndarray]] = {}
    if "stages" in entry:
        with np.load(path / entry["stages"]["file"], allow_pickle=False) as z:
            for key in z.files:
                stage, _, name = key.partition("/")
                states.setdefault(stage, {})[name] = z[key]
        return states
    arrays: dict[str, np.ndarray] = {}
    if entry.get("arrays"):
        with np.load(path / entry["arrays"], allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    if entry.get("near_duplicates"):
        states["reranker.0.rules"] = {k: v for k, v in arrays.items() if k.startswith("near_dup.")}
    if entry.get("ranker"):
        r = entry["ranker"]
        info = {k: r[k] for k in ("names", "n_queries", "n_pairs", "positives", "validation", "seconds")}
        info["similarity"] = bool(r.get("similarity", True))
        st = {"booster": np.frombuffer((path / r["file"]).read_bytes(), np.uint8),
              "info": np.frombuffer(json.dumps(info).encode(), np.uint8)}
        st.update({k: arrays[k] for k in ("embedding", "last_item") if k in arrays})
        states["fusion.ranker"] = st
    return states


def _share_user_items(models) -> None:
    """Strategies fitted on the same data hold equal training matrices (each saved with its model):
    after loading, they all point to one of them instead of a copy each."""
    kept: list[sp.csr_matrix] = []
    for m in models:
        x = getattr(m, "user_items_", None)
        if x is None or not sp.issparse(x):
            continue
        for k in kept:
            if (k.shape == x.shape and k.nnz == x.nnz and k.dtype == x.dtype and np.array_equal(k.indptr, x.indptr)
                    and np.array_equal(k.indices, x.indices) and np.array_equal(k.data, x.data)):
                m.user_items_ = k
                break
        else:
            kept.append(x)


def load_recommender(path: Path, cls: type):
    """Read an artifact written by :func:`save_recommender` into a new ``cls`` (the Recommender)."""
    from .pipeline import ModelCache, ScenarioPipeline
    from .stages import FilterReport

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
        _share_user_items(cache.models.values())
        cache.skipped.update(manifest.get("skipped", {}))
        cache.fit_seconds.update(manifest.get("fit_seconds", {}))
        facts_list = []
        for fm in manifest["facts"]:
            with np.load(path / fm["file"], allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            titles = None
            if table is not None and "title" in table.columns:
                # the table's own column (Arrow-backed from parquet): no Python string per item
                titles = table["title"].array
            facts_list.append(ItemFacts(
                n_items=int(fm["n_items"]), **{k: arrays[k] for k in _FACT_ARRAYS},
                **{k: arrays[k] for k in _FACT_OPTIONAL if k in arrays},
                category_names=list(fm["category_names"]), purchased=_load_sparse("purchased", arrays),
                now=float(fm["now"]), titles=titles))
        configs = {name: ScenarioConfig.model_validate(e["config"]) for name, e in manifest["scenarios"].items()}
        rec = cls(list(configs.values()))
        rec.data_ = data
        rec.cache_ = cache
        rec.fit_seconds_ = dict(manifest.get("scenario_fit_seconds", {}))
        for name, e in manifest["scenarios"].items():
            rec.pipelines[name] = ScenarioPipeline.restore(
                configs[name], data, cache, facts_list[e["facts"]], weights=np.asarray(e["weights"], np.float32),
                notes=e["notes"], validation=e["validation"],
                text_model=cache.models[e["text_index"]] if e["text_index"] else None,
                states=_stage_states(path, e), method=e.get("method"),
                filter_reports=[FilterReport(**r) for r in e.get("training_filters", [])])
        first = next(iter(cache.models.values()), None)
        rec._index_history(first.user_items_ if first is not None
                           else sp.csr_matrix((data.n_users, data.n_items), dtype=np.float32))
    except ArtifactError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise ArtifactError(f"{path}: the artifact is incomplete or corrupt ({type(e).__name__}: {e})") from e
    rec.manifest_ = manifest
    return rec
