"""The learned ranker: LightGBM LambdaRank over features of each candidate (request, item) pair.

Trained (:mod:`.learn`) on a validation slice cut from the *training* data (never the test): the
scenario's strategies are fitted on the part before the slice, propose candidates for the slice's
requests, and the ranker learns which of them the user took. Features:

* per strategy: normalised score, rank (missing = not proposed), raw score;
* agreement: how many strategies proposed the item, the weighted and the RRF fusion scores;
* item: popularity (log users), trend (7-day decay), days since its last and first event, log price,
  and what buyers said after buying (:mod:`shoprec.scenarios.complaints`: return, poor-review and
  late-delivery rates, each shrunk toward the item's seller), and its expected delivery days and late
  risk to a shopper of unknown region (:mod:`shoprec.scenarios.delivery`: the seller's overall);
* request × item: the share of the request's history in the item's category (user-category
  affinity), the item's price relative to the basket's mean price, and the item's similarity to the
  request's most recent item, to its whole history and to its basket (cosines of co-occurrence
  embeddings, :func:`item_embedding`);
* request: history length, known user or not, basket size, session length.

Features read a :class:`~shoprec.scenarios.stages.StageEnv` (facts, strategies, data, the scenario's
config), never a pipeline: the same ranker is scored against the validation slice's inner fit while
it is chosen, and against the served fit after.
"""

from __future__ import annotations

import json

import numpy as np
import scipy.sparse as sp

from ...strategies.base import Queries
from ..stages import Fusion, StageConfig, StageEnv, row_weights
from .pairs import Pairs, top_mask

FEATURES_COMMON = ["n_sources", "weighted", "rrf", "log_popularity", "trend", "days_since_last",
                   "days_since_first", "log_price", "category_affinity", "price_vs_basket",
                   "log_history", "known_user", "basket_size", "session_length",
                   "return_rate", "poor_review_rate", "late_rate", "delivery_days", "late_risk"]
FEATURES_SIMILARITY = ["sim_recent", "sim_history", "sim_basket"]

#: dimensions of the co-occurrence embedding behind the similarity features
EMBED_DIM = 64


def feature_names(labels: list[str], similarity: bool = True) -> list[str]:
    return ([f"{lab}:score" for lab in labels] + [f"{lab}:rank" for lab in labels]
            + [f"{lab}:raw" for lab in labels] + FEATURES_COMMON + (FEATURES_SIMILARITY if similarity else []))


def item_embedding(env: StageEnv) -> np.ndarray:
    """(n_items, EMBED_DIM) float32 unit rows whose dot products approximate the normalised
    co-occurrence of items: a truncated SVD of the binary users × items matrix scaled by
    ``1/√degree`` on both sides (the GF-CF normalisation), items' rows = right singular vectors × the
    singular values. Items without events get a zero row. Cached on the env (its fitted data)."""
    cached = env.cache.get("embedding")
    if cached is not None:
        return cached
    from sklearn.utils.extmath import randomized_svd

    data = env.data
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
    _, sv, vt = randomized_svd(x, d, n_iter=4, random_state=env.config.ranker.seed)
    e = (vt.T * sv).astype(np.float32)
    e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    e[di == 0] = 0.0
    env.cache["embedding"] = e
    return e


def _last_items(env: StageEnv) -> np.ndarray:
    """Each training user's last item (-1 when the data has no order). Cached on the env."""
    last_seen = env.cache.get("last_item")
    if last_seen is None:
        seqs = env.data.sequences(by="user")
        last_seen = np.where(seqs.lengths > 0, seqs.last(), -1).astype(np.int32)
        if not env.data.has_order:
            last_seen[:] = -1
        env.cache["last_item"] = last_seen
    return last_seen


def prepare_serving(env: StageEnv) -> None:
    """Compute the arrays the similarity features read from the fitted data now, at fit (not on
    a first request; they are saved with the model, whose loaded copy has no events)."""
    item_embedding(env)
    _last_items(env)


def _recent_item(env: StageEnv, queries: Queries) -> np.ndarray:
    """Each request's most recent item: the page's item, else the session's last, else the known
    user's last training item (when the data has an order); -1 when there is none."""
    last_seen = _last_items(env)
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


def features(env: StageEnv, pairs: Pairs, queries: Queries, similarity: bool = True) -> np.ndarray:
    """(M, F) float32 feature matrix of the candidate pairs of one block (``similarity``: with the
    embedding-cosine features)."""
    facts = env.facts
    specs = env.config.strategies
    w = np.array([s.weight for s in specs], np.float32)
    n = len(queries)
    r, it = pairs.row, pairs.item
    n_src = np.zeros(len(r), np.float32)
    for s in range(len(specs)):
        n_src += (pairs.sources >> s) & 1
    rrf = np.where(np.isnan(pairs.rank), 0.0, 1.0 / (env.config.fusion.rrf_k + np.nan_to_num(pairs.rank))) @ w
    model = env.history_model()
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
        facts.return_rate[it], facts.poor_review_rate[it], facts.late_rate[it],
        facts.delivery_days[it], facts.late_risk[it],
    ])
    parts = [pairs.norm, pairs.rank, pairs.raw, common]
    if similarity:
        emb = item_embedding(env)
        recent = _recent_item(env, queries)
        rvec = np.where((recent >= 0)[:, None], emb[np.maximum(recent, 0)], 0.0).astype(np.float32)
        basket = queries.basket.to_csr(facts.n_items, binary=True)
        parts.append(np.column_stack([
            np.where(recent[r] >= 0, _pair_cosines(emb, it, r, rvec), np.nan),
            np.where(hist_len[r] > 0, _pair_cosines(emb, it, r, _unit(hist @ emb[:hist.shape[1]])), np.nan),
            np.where(b_len[r] > 0, _pair_cosines(emb, it, r, _unit(basket @ emb)), np.nan),
        ]))
    return np.hstack(parts).astype(np.float32)


class RankerStateConfig(StageConfig):
    pass


class Ranker(Fusion):
    """A trained LambdaRank model as a fusion: it re-orders each request's top ``[ranker] rerank``
    pairs of weighted fusion and puts them above the rest (which keep their weighted order).
    Untrained (made from a scenario file before fit), it fuses as weighted."""

    name = "ranker"
    Config = RankerStateConfig

    def __init__(self, config: StageConfig | None = None, *, booster=None, names: list[str] | None = None,
                 n_queries: int = 0, n_pairs: int = 0, positives: float = 0.0, validation: str = "",
                 seconds: float = 0.0, similarity: bool = True) -> None:
        super().__init__(config)
        self.booster = booster
        self.names = list(names or [])
        self.n_queries = n_queries
        self.n_pairs = n_pairs
        self.positives = positives
        self.validation = validation
        self.seconds = seconds
        self.similarity = similarity

    @property
    def trained(self) -> bool:
        return self.booster is not None

    def fuse(self, pairs: Pairs, weights: np.ndarray, queries: Queries) -> np.ndarray:
        return self.predict(self.env, pairs, weights, queries)

    def predict(self, env: StageEnv, pairs: Pairs, weights: np.ndarray, queries: Queries) -> np.ndarray:
        """The fused scores with the features of ``env`` (the served fit, or a validation slice's)."""
        w = row_weights(weights, pairs.row)
        weighted = (pairs.norm @ w if w.ndim == 1 else np.einsum("ms,ms->m", pairs.norm, w)).astype(np.float32)
        if not len(pairs.row) or self.booster is None:
            return weighted
        top = top_mask(pairs.row, pairs.item, weighted, len(queries), env.config.ranker.rerank)
        out = weighted - weighted.max(initial=0) - 1.0
        sub = pairs.subset(top)
        x = features(env, sub, queries, self.similarity)
        if self.names and x.shape[1] != len(self.names):
            # a ranker saved before features were added: its own columns, by name
            now = feature_names([s.display for s in env.config.strategies], self.similarity)
            x = x[:, [now.index(n) for n in self.names]]
        pred = np.asarray(self.booster.predict(x), dtype=np.float32)
        out[top] = 1000.0 + pred
        return out.astype(np.float32)

    def importance(self) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        total = max(float(gain.sum()), 1e-12)
        return {name: float(g) / total for name, g in zip(self.names, gain)}

    def info(self) -> dict:
        return {"names": self.names, "n_queries": self.n_queries, "n_pairs": self.n_pairs,
                "positives": self.positives, "validation": self.validation, "seconds": self.seconds,
                "similarity": bool(self.similarity)}

    # ------------------------------------------------------------------ persistence
    def state(self) -> dict[str, np.ndarray]:
        """The LightGBM model (its text format, as bytes), what it was trained on (JSON), and the
        feature arrays computed from the fitted data (co-occurrence embedding, users' last items)."""
        if self.booster is None:
            return {}
        out = {"booster": np.frombuffer(self.booster.model_to_string().encode(), np.uint8),
               "info": np.frombuffer(json.dumps(self.info()).encode(), np.uint8)}
        if self.env is not None:
            if self.similarity:
                prepare_serving(self.env)
            out.update({k: v for k, v in self.env.cache.items() if k in ("embedding", "last_item")})
        return out

    def set_state(self, state) -> None:
        if "booster" not in state:
            return
        import lightgbm as lgb

        self.booster = lgb.Booster(model_str=bytes(np.asarray(state["booster"], np.uint8)).decode())
        info = json.loads(bytes(np.asarray(state["info"], np.uint8)).decode())
        self.names = list(info["names"])
        self.n_queries, self.n_pairs = int(info["n_queries"]), int(info["n_pairs"])
        self.positives, self.validation = float(info["positives"]), info["validation"]
        self.seconds, self.similarity = float(info["seconds"]), bool(info.get("similarity", True))
        if self.env is not None:
            if "embedding" in state:
                self.env.cache["embedding"] = np.asarray(state["embedding"], np.float32)
            if "last_item" in state:
                self.env.cache["last_item"] = np.asarray(state["last_item"], np.int32)

    def refresh_items(self, changed: np.ndarray) -> None:
        """New items have no co-occurrence yet: a zero embedding row each."""
        if self.env is None:
            return
        emb = self.env.cache.get("embedding")
        m = self.env.facts.n_items
        if emb is not None and len(emb) < m:
            self.env.cache["embedding"] = np.vstack([emb, np.zeros((m - len(emb), emb.shape[1]), np.float32)])
