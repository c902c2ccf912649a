"""The learned ranker: LightGBM LambdaRank over features of each candidate (request, item) pair.

Trained on a validation slice cut from the *training* data (never the test): the scenario's
strategies are fitted on the part before the slice, propose candidates for the slice's requests, and
the ranker learns which of them the user took. Features:

* per strategy: normalised score, rank (missing = not proposed), raw score;
* agreement: how many strategies proposed the item, the weighted and the RRF fusion scores;
* item: popularity (log users), trend (7-day decay), days since its last and first event, log price;
* request × item: the share of the request's history in the item's category (user-category
  affinity), the item's price relative to the basket's mean price, and the item's similarity to the
  request's most recent item, to its whole history and to its basket (cosines of co-occurrence
  embeddings, :func:`item_embedding`);
* request: history length, known user or not, basket size, session length.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from ..data import Behaviour, Ragged, ShopData
from ..strategies.base import Queries
from .facts import DAY

FEATURES_COMMON = ["n_sources", "weighted", "rrf", "log_popularity", "trend", "days_since_last",
                   "days_since_first", "log_price", "category_affinity", "price_vs_basket",
                   "log_history", "known_user", "basket_size", "session_length"]
FEATURES_SIMILARITY = ["sim_recent", "sim_history", "sim_basket"]

#: dimensions of the co-occurrence embedding behind the similarity features
EMBED_DIM = 64


def feature_names(labels: list[str], similarity: bool = True) -> list[str]:
    return ([f"{lab}:score" for lab in labels] + [f"{lab}:rank" for lab in labels]
            + [f"{lab}:raw" for lab in labels] + FEATURES_COMMON + (FEATURES_SIMILARITY if similarity else []))


def item_embedding(pipe) -> np.ndarray:
    """(n_items, EMBED_DIM) float32 unit rows whose dot products approximate the normalised
    co-occurrence of items: a truncated SVD of the binary users × items matrix scaled by
    ``1/√degree`` on both sides (the GF-CF normalisation), items' rows = right singular vectors × the
    singular values. Items without events get a zero row. Cached on the pipeline (fitted data)."""
    cached = getattr(pipe, "_embedding", None)
    if cached is not None:
        return cached
    from sklearn.utils.extmath import randomized_svd

    data = pipe.data_
    ev = data.events
    x = sp.csr_matrix((np.ones(len(ev), np.float32), (ev["user_idx"].to_numpy(), ev["item_idx"].to_numpy())),
                      shape=(data.n_users, data.n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    du = np.asarray(x.sum(axis=1)).ravel()
    di = np.asarray(x.sum(axis=0)).ravel()
    x = sp.diags(1.0 / np.sqrt(np.maximum(du, 1))).astype(np.float32) @ x @ \
        sp.diags(1.0 / np.sqrt(np.maximum(di, 1))).astype(np.float32)
    d = max(1, min(EMBED_DIM, min(x.shape) - 1))
    _, sv, vt = randomized_svd(x, d, n_iter=4, random_state=pipe.config.ranker.seed)
    e = (vt.T * sv).astype(np.float32)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    e[di == 0] = 0.0
    pipe._embedding = e
    return e


def _last_items(pipe) -> np.ndarray:
    """Each training user's last item (-1 when the data has no order). Cached on the pipeline."""
    last_seen = getattr(pipe, "_last_item", None)
    if last_seen is None:
        seqs = pipe.data_.sequences(by="user")
        last_seen = np.where(seqs.lengths > 0, seqs.last(), -1).astype(np.int32)
        if not pipe.data_.has_order:
            last_seen[:] = -1
        pipe._last_item = last_seen
    return last_seen


def prepare_serving(pipe) -> None:
    """Compute the arrays the similarity features read from the fitted data now, at fit (not on
    a first request; they are saved with the model, whose loaded copy has no events)."""
    item_embedding(pipe)
    _last_items(pipe)


def _recent_item(pipe, queries: Queries) -> np.ndarray:
    """Each request's most recent item: the page's item, else the session's last, else the known
    user's last training item (when the data has an order); -1 when there is none."""
    last_seen = _last_items(pipe)
    out = np.full(len(queries), -1, np.int32)
    u = queries.user_idx
    known = (u >= 0) & (u < len(last_seen))
    out[known] = last_seen[u[known]]
    has_s = queries.items.lengths > 0
    out[has_s] = queries.items.last()[has_s]
    cur = queries.current_item
    out[cur >= 0] = cur[cur >= 0]
    return out


def _pair_cosines(emb: np.ndarray, items: np.ndarray, rows: np.ndarray, request_vecs: np.ndarray,
                  chunk: int = 1 << 18) -> np.ndarray:
    """cos(emb[items[j]], request_vecs[rows[j]]) for every pair, in chunks (vectors are unit or 0)."""
    out = np.empty(len(items), np.float32)
    for s in range(0, len(items), chunk):
        out[s:s + chunk] = np.einsum("md,md->m", emb[items[s:s + chunk]], request_vecs[rows[s:s + chunk]])
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def features(pipe, pairs, queries: Queries, similarity: bool = True) -> np.ndarray:
    """(M, F) float32 feature matrix of the candidate pairs of one block (``similarity``: with the
    embedding-cosine features)."""
    facts = pipe.facts_
    w = np.array([s.weight for s in pipe.specs_], np.float32)
    n = len(queries)
    r, it = pairs.row, pairs.item
    n_src = np.zeros(len(r), np.float32)
    for s in range(len(pipe.specs_)):
        n_src += (pairs.sources >> s) & 1
    rrf = np.where(np.isnan(pairs.rank), 0.0, 1.0 / (pipe.config.fusion.rrf_k + np.nan_to_num(pairs.rank))) @ w
    model = next((m for m in pipe.models_ if m is not None), None)
    hist = model.history(queries) if model is not None else sp.csr_matrix((n, facts.n_items), dtype=np.float32)
    hist_len = np.diff(hist.indptr).astype(np.float32)
    cat = facts.category
    n_cat = int(cat.max(initial=-1)) + 1
    affinity = np.zeros(len(r), np.float32)
    if n_cat and hist.nnz:
        hr = np.repeat(np.arange(n), np.diff(hist.indptr))
        hc = cat[hist.indices]
        ok = hc >= 0
        aff = np.zeros((n, n_cat), np.float32)
        np.add.at(aff, (hr[ok], hc[ok]), hist.data[ok])
        aff /= np.maximum(aff.sum(axis=1, keepdims=True), 1e-9)
        ic = cat[it]
        affinity = np.where(ic >= 0, aff[r, np.maximum(ic, 0)], 0.0)
    b_rows = queries.basket.rows()
    b_price = np.nan_to_num(facts.price[queries.basket.values], nan=0.0) if len(b_rows) else np.zeros(0)
    b_sum = np.bincount(b_rows, weights=b_price, minlength=n)
    b_len = queries.basket.lengths.astype(np.float32)
    # a basket of free (price 0) items has no price scale: the ratio is missing, not infinite
    b_mean = np.where((b_len > 0) & (b_sum > 0), b_sum / np.maximum(b_len, 1), np.nan)
    price = facts.price[it].astype(np.float64)
    common = np.column_stack([
        n_src, pairs.norm @ w, rrf,
        np.log1p(facts.popularity[it]), facts.trend[it], facts.days_since_last[it], facts.days_since_first[it],
        np.log1p(price), affinity, price / b_mean[r],
        np.log1p(hist_len[r]), (queries.user_idx[r] >= 0).astype(np.float32), b_len[r],
        queries.items.lengths[r].astype(np.float32),
    ])
    parts = [pairs.norm, pairs.rank, pairs.raw, common]
    if similarity:
        emb = item_embedding(pipe)
        recent = _recent_item(pipe, queries)
        rvec = np.where((recent >= 0)[:, None], emb[np.maximum(recent, 0)], 0.0).astype(np.float32)
        basket = queries.basket.to_csr(facts.n_items, binary=True)
        parts.append(np.column_stack([
            np.where(recent[r] >= 0, _pair_cosines(emb, it, r, rvec), np.nan),
            np.where(hist_len[r] > 0, _pair_cosines(emb, it, r, _unit(hist @ emb[:hist.shape[1]])), np.nan),
            np.where(b_len[r] > 0, _pair_cosines(emb, it, r, _unit(basket @ emb)), np.nan),
        ]))
    return np.hstack(parts).astype(np.float32)


@dataclass
class Ranker:
    """A trained LambdaRank model and what it was trained on."""

    booster: object
    names: list[str]
    n_queries: int
    n_pairs: int
    positives: float
    validation: str
    seconds: float
    similarity: bool = True

    def predict(self, pipe, pairs, queries: Queries) -> np.ndarray:
        """Scores that put the ranker's order on each request's top ``rerank`` weighted pairs, above
        the rest (which keep their weighted order)."""
        weighted = pairs.norm @ pipe.weights_
        if not len(pairs.row):
            return weighted
        top = top_mask(pairs.row, pairs.item, weighted, len(queries), pipe.config.ranker.rerank)
        out = weighted - weighted.max(initial=0) - 1.0
        sub = pairs.subset(top)
        pred = np.asarray(self.booster.predict(features(pipe, sub, queries, self.similarity)), dtype=np.float32)
        out[top] = 1000.0 + pred
        return out.astype(np.float32)

    def importance(self) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        total = max(float(gain.sum()), 1e-12)
        return {name: float(g) / total for name, g in zip(self.names, gain)}


# --------------------------------------------------------------------------- validation slices
def validation_task(data: ShopData, how: str, fraction: float, seed: int = 0):
    """Cut a validation task from training data: ``temporal``, ``leave_one_out``, ``session``,
    ``basket``, ``holdout`` (random share of each user's interactions), or ``auto``."""
    from ..evaluation import splits

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
        from ..evaluation.cold_splits import first_visit

        return first_visit(data, test_fraction=fraction)
    if how == "new_users":
        from ..evaluation.cold_splits import new_users

        return new_users(data, test_fraction=fraction, seed=seed)
    raise ValueError(f"unknown validation slice {how!r}")


def concat_tasks(tasks):
    """One task from several with the same training data (their queries stacked)."""
    import scipy.sparse as sp

    from ..evaluation.splits import EvalTask

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
    from ..evaluation.splits import EvalTask, _rows_to_csr

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
    from ..evaluation.splits import EvalTask, _rows_to_csr

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


def validation_set(pipe, data: ShopData) -> ValidationSet:
    """Fit the scenario's strategies on the training part of a validation slice of ``data`` and
    collect the candidate pairs of its requests with their labels."""
    from .pipeline import ModelCache, ScenarioPipeline

    cfg = pipe.config.ranker
    start = time.perf_counter()
    task = validation_task(data, cfg.validation, cfg.validation_fraction, cfg.seed)
    n_q = task.n_queries
    rng = np.random.default_rng(cfg.seed)
    sel = np.sort(rng.choice(n_q, size=min(n_q, cfg.max_queries), replace=False)) if n_q else np.zeros(0, int)
    held = rng.random(len(sel)) < cfg.method_holdout
    queries = task.queries.take(sel)
    relevant = task.relevant[sel]
    exclude = task.exclude[sel] if task.exclude is not None else None
    inner_cfg = pipe.config.model_copy(update={"fusion": pipe.config.fusion.model_copy(
        update={"method": "weighted", "tune_weights": False})})
    inner = ScenarioPipeline(inner_cfg).fit(task.train, cache=ModelCache(), train_ranker=False)
    blocks = []
    step = max(1, inner.block_cells // max(data.n_items, 1))
    for b in range(0, len(sel), step):
        bs = np.arange(b, min(len(sel), b + step))
        qb = queries.take(bs)
        allowed = inner.allowed(qb, None, exclude[bs] if exclude is not None else None)
        pairs = inner.candidate_pairs(qb, allowed)
        rel = relevant[bs]
        y = np.asarray(rel[pairs.row, pairs.item]).ravel() > 0 if len(pairs.row) else np.zeros(0, bool)
        blocks.append(ValidationBlock(qb, pairs, y, np.diff(rel.indptr), held[bs]))
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
    from .pipeline import _top_pairs

    total, count = 0.0, 0
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    for blk in vs.blocks:
        has = (blk.n_relevant > 0) & _part(blk, part)
        count += int(has.sum())
        if not has.any() or not len(blk.pairs.row):
            continue
        p = blk.pairs
        idx, _, lab = _top_pairs(p.row, p.item, score_fn(blk), blk.label.astype(np.int64), len(blk.queries), k)
        dcg = (((lab > 0) & (idx >= 0)) * disc).sum(axis=1)
        ideal = np.cumsum(disc)[np.minimum(np.maximum(blk.n_relevant, 1), k) - 1]
        total += float((dcg / ideal)[has].sum())
    return total / max(count, 1)


def compare_methods(pipe, vs: ValidationSet) -> dict[str, float]:
    """NDCG@10 of each fusion method on the held-out validation requests (not used for tuning or
    training): ``weighted`` (the pipeline's weights), ``rrf`` and, when trained, ``ranker``."""
    inner = vs.inner
    inner.weights_ = pipe.weights_.copy()
    out = {"weighted": pairs_ndcg(vs, lambda b: b.pairs.norm @ pipe.weights_),
           "rrf": pairs_ndcg(vs, lambda b: inner.fuse(b.pairs, b.queries, "rrf"))}
    if pipe.ranker is not None:
        out["ranker"] = pairs_ndcg(vs, lambda b: pipe.ranker.predict(inner, b.pairs, b.queries))
    if getattr(pipe, "ranker_ablation_", None) is not None:
        out["ranker (no similarity)"] = pairs_ndcg(vs, lambda b: pipe.ranker_ablation_.predict(inner, b.pairs,
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


def top_mask(row, item, score, n, k) -> np.ndarray:
    """Bool per pair: among its request's top ``k`` by ``score`` (ties: lower item)."""
    order = np.lexsort((item, -score, row))
    r = row[order]
    starts = np.searchsorted(r, np.arange(n))
    pos = np.empty(len(order), np.int64)
    pos[order] = np.arange(len(r)) - starts[r]
    return pos < k


def train_ranker(pipe, vs: ValidationSet, similarity: bool = True) -> Ranker:
    """Train LambdaRank on the validation pairs of the fitting part (requests without any relevant
    candidate dropped); ``similarity=False`` leaves out the embedding-cosine features (an ablation)."""
    import lightgbm as lgb

    cfg = pipe.config.ranker
    start = time.perf_counter()
    X_parts, y_parts, groups = [], [], []
    for blk in vs.blocks:
        p, y = blk.pairs, blk.label
        if not len(p.row):
            continue
        n = len(blk.queries)
        top = top_mask(p.row, p.item, p.norm @ pipe.weights_, n, cfg.rerank)
        p, y = p.subset(top), y[top]
        has_pos = (np.bincount(p.row[y], minlength=n) > 0) & ~blk.held
        keep = has_pos[p.row]
        if not keep.any():
            continue
        X_parts.append(features(vs.inner, p, blk.queries, similarity)[keep])
        y_parts.append(y[keep].astype(np.int32))
        groups.append(np.bincount(p.row[keep], minlength=n)[has_pos])
    names = feature_names([s.display for s in pipe.specs_], similarity)
    if not X_parts:
        raise ValueError(f"{pipe.config.name}: the validation slice ({vs.protocol}) gave no request whose "
                         "answer was among the candidates; cannot train the ranker")
    X = np.vstack(X_parts)
    y = np.concatenate(y_parts)
    group = np.concatenate(groups)
    model = lgb.LGBMRanker(objective="lambdarank", n_estimators=cfg.n_estimators, learning_rate=cfg.learning_rate,
                           num_leaves=cfg.num_leaves, min_child_samples=cfg.min_child_samples,
                           subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                           random_state=cfg.seed, n_jobs=2, verbose=-1, deterministic=True,
                           force_row_wise=True, lambdarank_truncation_level=20)
    model.fit(X, y, group=group, feature_name=[re.sub(r"[^0-9A-Za-z_]", "_", n) for n in names])
    return Ranker(model.booster_, names, int(len(group)), int(len(y)), float(y.mean()),
                  vs.protocol, vs.seconds + time.perf_counter() - start, similarity)
