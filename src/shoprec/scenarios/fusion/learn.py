"""What fusion learns from a validation slice of the training data (never the test): the slice
itself, tuned weights, the LightGBM ranker, and the held-out comparison behind ``method = "auto"``.

The slice is cut like the test protocol (temporal, leave-one-out, session prefixes, basket hold-out,
random hold-out, first visits, new users); the scenario's strategies are fitted on its training part
by a pipeline of the caller's own class (this module does not import the pipeline), propose candidates
for its requests, and the labels say which the user took. A share of the requests (``method_holdout``)
is kept out of tuning and training; the methods are compared on it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...data import Behaviour, Ragged, ShopData
from ...strategies._parallel import map_in_threads
from ...strategies.base import Queries
from .methods import RRFFusion
from .pairs import top_mask, top_pairs
from .ranker import Ranker, feature_names, features


# --------------------------------------------------------------------------- validation slices
def validation_task(data: ShopData, how: str, fraction: float, seed: int = 0):
    """Cut a validation task from training data: ``temporal``, ``leave_one_out``, ``session``,
    ``basket``, ``holdout`` (random share of each user's interactions), or ``auto``."""
    from ...evaluation import splits

    ts = data.events["timestamp"].to_numpy()
    timed = len(ts) > 0 and bool((ts >= 0).all())
    if how == "auto":
        how = "temporal" if timed else "holdout"
    if how == "temporal":
        has_buy = (data.events["behaviour"] == int(Behaviour.PURCHASE)).any()
        return splits.temporal_split(data, test_fraction=fraction,
                                     behaviours=(Behaviour.PURCHASE,) if has_buy else None,
                                     exclude_train=False, known_users_only=False)
    if how == "leave_one_out":
        return splits.leave_one_out(data)
    if how == "basket":
        # every validation basket three times, a different item hidden each time: 3× the groups
        tasks = [splits.basket_hold_one_out(data, test_fraction=fraction, seed=seed + i) for i in range(3)]
        return concat_tasks(tasks)
    if how == "session":
        return session_holdout(data, fraction, seed)
    if how == "holdout":
        return random_holdout(data, fraction, seed)
    if how == "first_visit":
        from ...evaluation.cold_splits import first_visit

        return first_visit(data, test_fraction=fraction)
    if how == "new_users":
        from ...evaluation.cold_splits import new_users

        return new_users(data, test_fraction=fraction, seed=seed)
    raise ValueError(f"unknown validation slice {how!r}")


def concat_tasks(tasks):
    """One task from several with the same training data (their queries stacked)."""
    from ...evaluation.splits import EvalTask

    first = tasks[0]
    qs = [t.queries for t in tasks]
    queries = Queries(np.concatenate([q.user_idx for q in qs]), Ragged.stack([q.items for q in qs]),
                      np.concatenate([q.current_item for q in qs]), Ragged.stack([q.basket for q in qs]))
    exclude = None if first.exclude is None else sp.vstack([t.exclude for t in tasks]).tocsr()
    return EvalTask(first.name, first.train, queries, sp.vstack([t.relevant for t in tasks]).tocsr(), exclude,
                    protocol=first.protocol + f" (×{len(tasks)} hidden items)")


def random_holdout(data: ShopData, fraction: float, seed: int = 0):
    """Hide a random ``fraction`` of each user's distinct items (users with ≥ 2 items); query every
    such user; training items excluded (the all-ranking protocol, for data without time)."""
    from ...evaluation.splits import EvalTask, _rows_to_csr

    ev = data.events
    rng = np.random.default_rng(seed)
    pairs = ev[["user_idx", "item_idx"]].drop_duplicates()
    u = pairs["user_idx"].to_numpy()
    counts = np.bincount(u, minlength=data.n_users)
    hide = (rng.random(len(pairs)) < fraction) & (counts[u] >= 2)
    hidden = pairs[hide]
    key_h = hidden["user_idx"].to_numpy().astype(np.int64) * data.n_items + hidden["item_idx"].to_numpy()
    key_e = ev["user_idx"].to_numpy().astype(np.int64) * data.n_items + ev["item_idx"].to_numpy()
    train = data.filter_events(~np.isin(key_e, key_h), name=f"{data.name}-holdout")
    users, inv = np.unique(hidden["user_idx"].to_numpy(), return_inverse=True)
    relevant = _rows_to_csr(inv, hidden["item_idx"].to_numpy(), (len(users), data.n_items))
    exclude = train.interactions(binary=True)[users]
    return EvalTask(train.name, train, Queries.for_users(users.astype(np.int32)), relevant, exclude,
                    protocol=f"random {fraction:.0%} of each user's items hidden")


def session_holdout(data: ShopData, fraction: float, seed: int = 0):
    """The last ``fraction`` of sessions (by index) become prefixes cut at a random point; the next
    item is the target; training = the other sessions."""
    from ...evaluation.splits import EvalTask, _rows_to_csr

    seqs = data.sequences(by="session")
    n_s = len(seqs)
    lengths = seqs.lengths
    cand = np.flatnonzero(lengths >= 2)
    test_s = cand[cand >= int(n_s * (1 - fraction))] if len(cand) else cand
    rng = np.random.default_rng(seed)
    cut = (rng.random(len(test_s)) * (lengths[test_s] - 1)).astype(np.int64) + 1  # prefix length ≥ 1
    starts = seqs.indptr[test_s]
    prefixes = Ragged.from_lists([seqs.values[s:s + c] for s, c in zip(starts, cut)])
    targets = seqs.values[starts + cut]
    sess = data.events["session_idx"].to_numpy()
    train = data.filter_events(~np.isin(sess, test_s), name=f"{data.name}-sessions")
    relevant = _rows_to_csr(np.arange(len(test_s)), targets, (len(test_s), data.n_items))
    return EvalTask(train.name, train, Queries.for_sessions(prefixes), relevant, None,
                    protocol=f"last {fraction:.0%} of sessions cut at a random point")


# --------------------------------------------------------------------------- training
class NothingToLearn(ValueError):
    """The validation slice holds nothing to learn from (a shop too small or too new)."""


@dataclass
class ValidationBlock:
    """Candidate pairs of one block of validation requests, with their labels."""

    queries: Queries
    pairs: object
    label: np.ndarray        # bool (M,)
    n_relevant: np.ndarray   # per request, all its relevant items (found or not)
    held: np.ndarray         # bool per request: held out from weight tuning and ranker training


@dataclass
class ValidationSet:
    inner: object            # the pipeline fitted on the validation slice's training part
    blocks: list
    protocol: str
    n_queries: int
    seconds: float


@dataclass
class SharedSlice:
    """A validation slice as the scenarios that cut it alike share it: the task, the cache of the
    strategies fitted on its training part, and their candidates per block of requests."""

    task: object
    cache: object
    candidates: dict


def _digest(a: np.ndarray) -> bytes:
    """A short fingerprint of a bool array (a block's allowed mask)."""
    import hashlib

    return hashlib.blake2b(np.packbits(a).tobytes(), digest_size=16).digest()


def shared_slice(cache, config, data: ShopData) -> SharedSlice:
    """The validation slice of a scenario (``config``) on its (filtered) ``data``, from ``cache``
    when it keeps slices (a :class:`~shoprec.scenarios.pipeline.ModelCache`: every scenario that cuts
    it alike gets the same), else a new one."""
    cfg = config.ranker

    def make() -> SharedSlice:
        return SharedSlice(validation_task(data, cfg.validation, cfg.validation_fraction, cfg.seed),
                           type(cache)(), {})

    share = getattr(cache, "validation_slice", None)
    return share(config, make) if share is not None else make()


def validation_set(pipe, data: ShopData) -> ValidationSet:
    """Fit the scenario's strategies on the training part of a validation slice of ``data`` and
    collect the candidate pairs of its requests with their labels. Scenarios whose pipelines share
    a cache (one :class:`~shoprec.scenarios.Recommender` fit) and cut the same slice share it, each
    strategy fitted on it once and its candidates for the same requests under the same rules
    computed once."""
    cfg = pipe.config.ranker
    start = time.perf_counter()
    shared = shared_slice(pipe.cache_, pipe.config, data)
    task = shared.task
    n_q = task.n_queries
    rng = np.random.default_rng(cfg.seed)
    sel = np.sort(rng.choice(n_q, size=min(n_q, cfg.max_queries), replace=False)) if n_q else np.zeros(0, int)
    held = rng.random(len(sel)) < cfg.method_holdout
    queries = task.queries.take(sel)
    relevant = task.relevant[sel]
    exclude = task.exclude[sel] if task.exclude is not None else None
    # the same kind of pipeline, on the slice's training part (already through the training filters),
    # fused by the configured weights: built from the pipeline's own class, not imported here
    inner_cfg = pipe.config.model_copy(update={
        "fusion": pipe.config.fusion.model_copy(update={"method": "weighted", "tune_weights": False}),
        "training_filters": []})
    inner = type(pipe)(inner_cfg).fit(task.train, cache=shared.cache, train_ranker=False)
    step = max(1, inner.block_cells // max(data.n_items, 1))

    def block(b: int) -> ValidationBlock:
        bs = np.arange(b, min(len(sel), b + step))
        qb = queries.take(bs)
        allowed = inner.allowed(qb, None, exclude[bs] if exclude is not None else None)
        # the requests of a block are those of (max_queries, seed, block); the rules, its mask
        pairs = inner.candidate_pairs(qb, allowed, memo=(shared.candidates, (cfg.max_queries, b, len(bs),
                                                                                _digest(allowed))))
        rel = relevant[bs]
        y = np.asarray(rel[pairs.row, pairs.item]).ravel() > 0 if len(pairs.row) else np.zeros(0, bool)
        return ValidationBlock(qb, pairs, y, np.diff(rel.indptr), held[bs])

    # blocks in threads: the strategies' candidate kernels (sparse products, sorts, BLAS, the
    # compiled kernels) release the GIL, and each block is independent of the others
    blocks = list(map_in_threads(block, range(0, len(sel), step)))
    return ValidationSet(inner, blocks, task.protocol, len(sel), time.perf_counter() - start)


def _dense(blk: ValidationBlock):
    """The block's pairs as padded (n, P, S) scores and (n, P) labels, cached on the block."""
    cached = getattr(blk, "_dense_cache", None)
    if cached is not None:
        return cached
    p = blk.pairs
    n = len(blk.queries)
    counts = np.bincount(p.row, minlength=n)
    P = max(int(counts.max(initial=0)), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(p.row)) - starts[p.row]      # pairs are sorted by row
    norm = np.zeros((n, P, p.norm.shape[1]), np.float32)
    label = np.zeros((n, P), bool)
    valid = np.zeros((n, P), bool)
    norm[p.row, pos] = p.norm
    label[p.row, pos] = blk.label
    valid[p.row, pos] = True
    blk._dense_cache = (norm, label, valid)
    return blk._dense_cache


def _part(blk: ValidationBlock, part: str | None) -> np.ndarray:
    """Bool per request: the ``fit`` part (tuning, training), the ``held`` part, or all (None)."""
    if part is None:
        return np.ones(len(blk.held), bool)
    return ~blk.held if part == "fit" else blk.held


def ndcg_at(vs: ValidationSet, weights: np.ndarray, k: int = 10, part: str | None = "fit") -> float:
    """Mean NDCG@k over the validation requests (of ``part``) of weighted fusion with ``weights``."""
    total, count = 0.0, 0
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for blk in vs.blocks:
        has = (blk.n_relevant > 0) & _part(blk, part)
        count += int(has.sum())
        if not len(blk.pairs.row):
            continue
        norm, label, valid = _dense(blk)
        fused = np.where(valid, norm @ np.asarray(weights, np.float32), -np.inf)
        kk = min(k, fused.shape[1])
        cand = np.argpartition(-fused, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(fused, cand, 1), axis=1, kind="stable")
        top = np.take_along_axis(cand, order, 1)
        lab = np.take_along_axis(label & valid, top, 1)
        dcg = (lab * disc[:kk]).sum(axis=1)
        ideal = np.cumsum(disc)[np.minimum(np.maximum(blk.n_relevant, 1), k) - 1]
        total += float((dcg / ideal)[has].sum())
    return total / max(count, 1)


def pairs_ndcg(vs: ValidationSet, score_fn, k: int = 10, part: str | None = "held") -> float:
    """Mean NDCG@k over the validation requests of ``part`` when each block's pairs are scored by
    ``score_fn(block) -> float32 (M,)`` (any fusion: weighted, RRF, the ranker)."""
    total, count = 0.0, 0
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for blk in vs.blocks:
        has = (blk.n_relevant > 0) & _part(blk, part)
        count += int(has.sum())
        if not has.any() or not len(blk.pairs.row):
            continue
        p = blk.pairs
        idx, _, lab = top_pairs(p.row, p.item, score_fn(blk), blk.label.astype(np.int64), len(blk.queries), k)
        dcg = (((lab > 0) & (idx >= 0)) * disc).sum(axis=1)
        ideal = np.cumsum(disc)[np.minimum(np.maximum(blk.n_relevant, 1), k) - 1]
        total += float((dcg / ideal)[has].sum())
    return total / max(count, 1)


def compare_methods(pipe, vs: ValidationSet) -> dict[str, float]:
    """NDCG@10 of each fusion method on the held-out validation requests (not used for tuning or
    training): ``weighted`` (the pipeline's weights), ``rrf`` and, when trained, ``ranker``."""
    env = vs.inner.env_
    w = pipe.weights_
    rrf = RRFFusion(rrf_k=pipe.config.fusion.rrf_k)
    out = {"weighted": pairs_ndcg(vs, lambda b: b.pairs.norm @ w),
           "rrf": pairs_ndcg(vs, lambda b: rrf.fuse(b.pairs, w, b.queries))}
    if pipe.ranker is not None:
        out["ranker"] = pairs_ndcg(vs, lambda b: pipe.ranker.predict(env, b.pairs, w, b.queries))
    if getattr(pipe, "ranker_ablation_", None) is not None:
        out["ranker (no similarity)"] = pairs_ndcg(vs, lambda b: pipe.ranker_ablation_.predict(env, b.pairs, w,
                                                                                             b.queries))
    return out


def tune_weights(vs: ValidationSet, start: np.ndarray, grid=(0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
                 rounds: int = 2) -> tuple[np.ndarray, float]:
    """Coordinate ascent on the fusion weights, maximising NDCG@10 on the fitting part of the
    validation requests."""
    w = np.asarray(start, np.float32).copy()
    best = ndcg_at(vs, w)
    for _ in range(rounds):
        improved = False
        for s in range(len(w)):
            for g in grid:
                if g == w[s]:
                    continue
                trial = w.copy()
                trial[s] = g
                if not trial.any():
                    continue
                score = ndcg_at(vs, trial)
                if score > best + 1e-9:
                    best, w, improved = score, trial, True
        if not improved:
            break
    return w, best


def _cap_requests(parts: list, max_pairs: int, seed: int) -> None:
    """Keep whole training requests, drawn at random with ``seed``, while their pairs add up to at
    most ``max_pairs`` (at least one request): ``parts`` holds ``(block, pairs, labels, has_pos)``,
    whose ``has_pos`` (the requests trained on) is narrowed in place."""
    sizes = [np.bincount(p.row, minlength=len(h))[h] for _, p, _, h in parts]
    counts = np.concatenate(sizes) if sizes else np.zeros(0, np.int64)
    if counts.sum() <= max_pairs:
        return
    order = np.random.default_rng(seed).permutation(len(counts))
    kept = np.zeros(len(counts), bool)
    kept[order[np.cumsum(counts[order]) <= max_pairs]] = True
    kept[order[0]] = True
    start = 0
    for (_, _, _, has_pos), size in zip(parts, sizes):
        rows = np.flatnonzero(has_pos)
        has_pos[rows[~kept[start:start + len(size)]]] = False
        start += len(size)


def train_ranker(pipe, vs: ValidationSet, similarity: bool = True) -> Ranker:
    """Train LambdaRank on the validation pairs of the fitting part (requests without any relevant
    candidate dropped); ``similarity=False`` leaves out the embedding-cosine features (an ablation)."""
    import lightgbm as lgb

    cfg = pipe.config.ranker
    start = time.perf_counter()
    parts = []
    for blk in vs.blocks:
        p, y = blk.pairs, blk.label
        if not len(p.row):
            continue
        n = len(blk.queries)
        top = top_mask(p.row, p.item, p.norm @ pipe.weights_, n, cfg.rerank)
        p, y = p.subset(top), y[top]
        has_pos = (np.bincount(p.row[y], minlength=n) > 0) & ~blk.held
        if has_pos.any():
            parts.append((blk, p, y, has_pos))
    if cfg.max_train_pairs is not None:
        _cap_requests(parts, cfg.max_train_pairs, cfg.seed)
    X_parts, y_parts, groups = [], [], []
    for blk, p, y, has_pos in parts:
        keep = has_pos[p.row]
        if not keep.any():
            continue
        p, n = p.subset(keep), len(blk.queries)
        X_parts.append(features(vs.inner.env_, p, blk.queries, similarity))
        y_parts.append(y[keep].astype(np.int32))
        groups.append(np.bincount(p.row, minlength=n)[has_pos])
    names = feature_names([s.display for s in pipe.specs_], similarity)
    if not X_parts:
        raise NothingToLearn(f"the validation slice ({vs.protocol}) gave no request whose answer was among "
                             "the candidates, so the ranker was not trained")
    X = np.vstack(X_parts)
    y = np.concatenate(y_parts)
    group = np.concatenate(groups)
    model = lgb.LGBMRanker(objective="lambdarank", n_estimators=cfg.n_estimators, learning_rate=cfg.learning_rate,
                           num_leaves=cfg.num_leaves, min_child_samples=cfg.min_child_samples,
                           subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                           random_state=cfg.seed, n_jobs=2, verbose=-1, deterministic=True,
                           force_row_wise=True, lambdarank_truncation_level=20)
    model.fit(X, y, group=group, feature_name=[re.sub(r"[^0-9A-Za-z_]", "_", n) for n in names])
    return Ranker(booster=model.booster_, names=names, n_queries=int(len(group)), n_pairs=int(len(y)),
                  positives=float(y.mean()), validation=vs.protocol,
                  seconds=vs.seconds + time.perf_counter() - start, similarity=similarity)
