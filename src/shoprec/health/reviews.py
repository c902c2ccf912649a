"""Fake reviews kept out of the signal, and what honest reviews and delivery dates say about sellers.

**The review frame.** One row per review: ``review_id``, ``order_id``, ``account`` (who wrote it),
``product``, ``seller``, ``score`` (1–5), ``created`` (unix seconds), ``text``, ``delivered_late``
(True / False, NA when the order's outcome is unknown), ``days_late`` (delivered − estimated, in days;
negative when early), ``undelivered`` (the order had not been delivered when reviewed) and
``orders_of_account``. :func:`olist_reviews` builds it from the Olist CSVs; any other source only
needs ``review_id``, ``score`` and ``created`` (every other column may be missing or NA: a review is
judged on what it has).

**The detectors** (:class:`ReviewDetector`, all reviews at once: sorted arrays, searchsorted windows
and group-bys; flags with subject ``review``, key ``review_id``, detector ``reviews``):

* **burst**: within one product's (or one seller's) reviews, a window of ``burst_days`` opened by a
  top rating (≥ ``top_score``) that holds at least ``burst_min`` top ratings, at least
  ``burst_new_share`` of them from one-order accounts, and at least ``burst_ratio`` × what the group's
  own rate predicts for the window. That rate is the higher of its long-run rate (its reviews outside
  the window over its active span, floored at ``burst_min_span_days``) and its rate in the
  ``burst_local_days`` on either side (a seller busy this month), raised, with ``burst_season``, by the
  rest of the shop's volume in the window against its usual (Black Friday lifts every product). Every top
  rating in such a window is flagged; the same number of top ratings spread over months is no burst.
* **duplicate_text**: texts are normalised (lower case, accents and punctuation removed, letters
  repeated three times or more collapsed). A text is *trivial*, never flagged, when it has fewer than
  ``dup_min_words`` words, or fewer than ``dup_long_words`` words of which fewer than
  ``dup_min_content`` lie outside :data:`GENERIC_WORDS` (Portuguese function words and the stock
  vocabulary of short shop reviews: "bom", "muito bom", "recomendo", "chegou antes do prazo", …).
  Distinct non-trivial texts are *near-same* when the Jaccard similarity of their sets of word pairs
  (``dup_shingle`` words) is ≥ ``dup_jaccard`` (MinHash with ``dup_hashes`` hashes, candidates from
  LSH bands of ``dup_band_rows`` hashes), and clustered (connected components). A cluster's reviews
  are flagged when it holds at least two accounts and is either one text (the same words) or at
  least ``dup_near_min`` reviews (one near-same pair is often chance). The first review of a cluster
  that predates the next by ``dup_original_days`` or more is its original (a copy campaign copies what
  exists) and is not flagged.
* **disagrees_with_delivery**: a top rating on an order delivered at least ``late_days`` after its
  estimate, or never delivered (an order without a delivery date whose status is not ``delivered``,
  its estimate passed when it was reviewed: Olist's ``canceled`` and ``unavailable`` orders among
  them), flagged only as a pattern of its product or seller: at least ``disagree_min`` such reviews,
  and at least ``disagree_share`` of the group's very late orders rated top. A single happy customer
  after a late delivery is not fraud (in the Olist sample 12 of the 45 late orders reviewed got five
  stars).

Per product (subject ``item``) and per seller (subject ``seller``), kind **fake_reviews**: at least
``fake_min`` of its reviews flagged, and at least ``fake_share`` of them.

**Consumer protection** (:func:`seller_review_stats`, :func:`poor_seller_flags`): per seller, the
reviews, the mean score shrunk toward the global mean by ``prior_reviews`` pseudo-reviews, the share
of 1–2 stars (raw and shrunk likewise), and, over its orders with a known outcome, the share delivered
late (shrunk toward the global share by ``prior_orders``) and the mean days late. A seller with at
least ``min_reviews`` reviews whose shrunk 1–2-star share is ≥ ``poor_share`` is flagged
``poor_reviews`` ("poorly reviewed (N % 1–2 stars)"); one with at least ``min_orders`` known outcomes
whose shrunk late share is ≥ ``late_share`` is flagged ``late_deliveries`` ("often delivered late (N %
of orders)"); both with subject ``seller`` and detector ``reviews``. Reviews flagged as fake can be
left out of these figures (``exclude``).

**The Olist sample** (``../shared/data/olist/sample``) holds the first rows of independently ordered
files: of its 6,123 reviews about 613 find their order (delivery dates), 546 their order's items
(product and seller), only 39 both, and 69 the customer table (a person's ``customer_unique_id``; else
the account is the order's ``customer_id``, which Olist issues per order, or the order id itself).
So nearly every account has one order, and the product, seller and delivery rules see a tenth of the
reviews; the text rule sees them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from pydantic import ConfigDict

from ..data.adapters.olist import parse_olist_dates

from ..scenarios.stages import StageConfig, TrainingFilter
from .flags import FLAG_COLUMNS, Flags

__all__ = ["GENERIC_WORDS", "FakeReviewsFilter", "ReviewConfig", "ReviewDetector", "reviews_of", "normalise_text", "olist_deliveries",
           "olist_reviews", "poor_seller_flags", "seller_review_stats"]

DAY = 86_400

REVIEW_COLUMNS = ("review_id", "order_id", "account", "product", "seller", "score", "created", "text",
                  "delivered_late", "days_late", "undelivered", "orders_of_account")

#: Portuguese function words and the stock vocabulary of short shop reviews: a text made only of these
#: (and fewer than ``dup_min_content`` other words) says nothing a thousand shoppers don't say alike.
GENERIC_WORDS = frozenset("""
a o os as e de do da dos das em no na nos nas num numa um uma uns umas que com sem para pra pro por pelo
pela se me mim meu minha meus minhas seu sua seus suas muito muita muitos muitas mais mas menos ja foi
fui era ser sao esta estao estou tem tinha ter ate ao aos nao sim bem mal so tambem como isso isto este
esta esse essa eu ele ela eles elas voce vc vcs nos lo la ai aqui ali la quando onde todo toda todos
todas tudo nada bastante demais super mega bom boa bons boas otimo otima otimos otimas excelente
excelentes perfeito perfeita maravilhoso maravilhosa lindo linda lindos lindas legal show top ok okay
certo certinho correto conforme esperado esperava descrito descricao anunciado anuncio gostei gostamos
adorei amei recomendo recomendado recomendada recomendaria indico satisfeito satisfeita satisfeitos
parabens obrigado obrigada agradeco nota 10 mil produto produtos item itens pedido pedidos compra
compras comprei loja lojas vendedor vendedora entrega entregas entregue entregues entregou chegou
chegaram chegada chegando recebi recebido recebida recebemos prazo prazos antes dentro rapido rapida
rapidos rapidez rapidamente qualidade aprovado aprovada ainda aguardando espera esperando estipulado
previsto data dia dias veio vieram tempo hora certa bonito bonita preco barato atendimento servico
""".split())


# ----------------------------------------------------------------------------------------- helpers

def _bool_float(values) -> np.ndarray:
    """1.0 / 0.0 / NaN of booleans that may be NA (True, False, 1, 0, None, NaN, pd.NA)."""
    return pd.Series(np.asarray(values, dtype=object)).map({True: 1.0, False: 0.0}).to_numpy(np.float64)


def _boolean(values: np.ndarray) -> pd.arrays.BooleanArray:
    """A nullable boolean array of 1.0 / 0.0 / NaN."""
    return pd.array(pd.Series(values).map({1.0: True, 0.0: False}), dtype="boolean")


def _pct(share: pd.Series | np.ndarray) -> pd.Series:
    return pd.Series(np.round(100 * np.asarray(share, np.float64))).astype("Int64").astype(str)


def _read(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    df = pd.read_csv(path, dtype=str, keep_default_na=True)
    df.columns = [str(c).lstrip("\ufeff").strip() for c in df.columns]
    for c in required:
        if c not in df.columns:
            raise ValueError(f"{path.name}: no column {c!r} (the columns are {list(df.columns)})")
    return df


def _strings(values: pd.Series) -> pd.Series:
    return values.astype("string").str.strip().replace("", pd.NA)


def _parse_dates(values: pd.Series, file: str, column: str) -> np.ndarray:
    """Unix seconds (NaN where missing or unparseable) of ``M/D/YYYY H:MM`` (the Olist samples) or ISO
    dates (Kaggle's Olist); a column where most present values parse as neither is malformed."""
    s = _strings(values)
    secs = parse_olist_dates(s)
    present = s.notna().to_numpy()
    bad = present & np.isnan(secs)
    if present.sum() and bad.sum() > 0.5 * present.sum():
        raise ValueError(f"{file}: column {column!r}: {int(bad.sum())} of {int(present.sum())} values are not "
                         f"dates (M/D/YYYY H:MM or ISO), e.g. {s[bad].head(3).tolist()}")
    return np.floor(secs)


def _parse_scores(values: pd.Series, file: str, column: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(scores, NaN where unusable; why, per row): a score that is missing, not a number, not whole or
    outside 1–5 is unusable; numbers given as text are read. A column where most present values are
    not numbers is malformed."""
    raw = _strings(values)
    present = raw.notna().to_numpy()
    num = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64)
    not_number = present & np.isnan(num)
    if present.sum() and not_number.sum() > 0.5 * present.sum():
        raise ValueError(f"{file}: column {column!r}: {int(not_number.sum())} of {int(present.sum())} values are "
                         f"not numbers, e.g. {raw[not_number].head(3).tolist()}")
    out_of_range = ~np.isnan(num) & ((num < 1) | (num > 5) | (num != np.round(num)))
    return np.where(out_of_range, np.nan, num), {"missing_score": ~present, "score_not_a_number": not_number,
                                                 "score_out_of_range": out_of_range}


def _find(path_dir: Path, *names: str) -> Path | None:
    return next((path_dir / n for n in names if (path_dir / n).exists()), None)


# ----------------------------------------------------------------------------------------- loading

def _outcomes(orders: pd.DataFrame, file: str, counts: dict) -> pd.DataFrame:
    """Per order: customer_id, status, delivered and estimated (unix s)."""
    delivered = _parse_dates(orders["order_delivered_customer_date"], file, "order_delivered_customer_date")
    estimated = _parse_dates(orders["order_estimated_delivery_date"], file, "order_estimated_delivery_date")
    counts["orders_with_unparsed_delivery_date"] = int(
        (np.isnan(delivered) & _strings(orders["order_delivered_customer_date"]).notna().to_numpy()).sum())
    counts["orders_without_estimate"] = int(np.isnan(estimated).sum())
    return pd.DataFrame({"order_id": _strings(orders["order_id"]).to_numpy(object),
                         "customer_id": _strings(orders["customer_id"]).to_numpy(object),
                         "status": _strings(orders["order_status"]).str.lower().fillna("").to_numpy(object),
                         "delivered_t": delivered, "estimated_t": estimated})


def _lateness(delivered: np.ndarray, estimated: np.ndarray, status: np.ndarray, asof: np.ndarray,
              known: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(delivered_late, days_late, undelivered) as 1.0 / 0.0 / NaN and days. An order is late when
    delivered on a later day than its estimate's; an order without a delivery date whose status is not
    ``delivered`` is undelivered, and late by (``asof`` − estimate) once ``asof`` (the review's
    creation) is past its estimate; ``known``: the order was found."""
    has_d, has_e = ~np.isnan(delivered), ~np.isnan(estimated)
    undelivered = known & ~has_d & (status != "delivered")
    days = np.where(has_d & has_e, (delivered - estimated) / DAY, np.nan)
    with np.errstate(invalid="ignore"):
        overdue = undelivered & has_e & (asof > estimated)
        late_day = np.floor(delivered / DAY) > np.floor(estimated / DAY)
    days = np.where(overdue, (asof - estimated) / DAY, days)
    late = np.where(has_d & has_e, late_day.astype(float), np.where(overdue, 1.0, np.nan))
    und = np.where(known & (has_d | undelivered), undelivered.astype(float), np.nan)
    return late, days, und


def olist_reviews(path_dir: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """(the review frame of the module docstring, counts) from the Olist CSVs in ``path_dir``:
    ``olist_order_reviews_dataset.csv`` (required) and, where present, ``olist_orders_dataset.csv``,
    ``olist_order_items_dataset.csv`` and the customers (``olistcustomerdataset.csv`` or
    ``olist_customers_dataset.csv``).

    A review is skipped, and counted by reason, when its id or its order id is missing, its score is
    not a whole number in 1–5 (a number written as text is read) or its creation date does not parse;
    exact repeats of a row are counted and read once. The counts also say how many reviews found their
    order, items and customer. A missing column, or a column where most values do not parse, raises a
    ValueError naming the file and the column. An order with several items is reviewed once: its
    product and seller are its first item's (counted). ``account`` is the customer's
    ``customer_unique_id`` where the customer table has it, else the order's ``customer_id``, else
    the order id; ``orders_of_account`` counts that account's orders in the files."""
    d = Path(path_dir)
    rf = d / "olist_order_reviews_dataset.csv"
    r = _read(rf, ("review_id", "order_id", "review_score", "review_creation_date"))
    counts: dict[str, int] = {"rows_read": int(len(r))}
    dup = r.duplicated().to_numpy()
    counts["duplicate_rows_read_once"] = int(dup.sum())
    r = r[~dup].reset_index(drop=True)
    rid, oid = _strings(r["review_id"]), _strings(r["order_id"])
    no_rid = rid.isna().to_numpy()
    no_oid = oid.isna().to_numpy() & ~no_rid
    ids_ok = ~no_rid & ~no_oid
    score, why = _parse_scores(r["review_score"], rf.name, "review_score")
    created = _parse_dates(r["review_creation_date"], rf.name, "review_creation_date")
    bad_score = np.isnan(score) & ids_ok
    bad_date = np.isnan(created) & ids_ok & ~bad_score
    counts.update(skipped_missing_review_id=int(no_rid.sum()), skipped_missing_order_id=int(no_oid.sum()),
                  **{f"skipped_{k}": int((v & ids_ok).sum()) for k, v in why.items()},
                  skipped_bad_date=int(bad_date.sum()))
    keep = ids_ok & ~bad_score & ~bad_date
    empty = pd.Series("", index=r.index)
    title = _strings(r.get("review_comment_title", empty)).fillna("")
    msg = _strings(r.get("review_comment_message", empty)).fillna("")
    text = (title + " " + msg).str.strip()
    rev = pd.DataFrame({"review_id": rid.to_numpy(object)[keep], "order_id": oid.to_numpy(object)[keep],
                        "score": score[keep].astype(np.int64), "created": created[keep].astype(np.int64),
                        "text": text.to_numpy(object)[keep]})
    n = len(rev)
    counts["reviews"] = n
    counts["review_ids_on_several_orders"] = int(rev["review_id"].duplicated(keep=False).sum())
    product = np.full(n, None, object)
    seller = np.full(n, None, object)
    account = rev["order_id"].to_numpy(object).copy()
    orders_of_account = np.ones(n)
    late = days = und = np.full(n, np.nan)
    counts.update(reviews_with_items=0, reviews_with_order=0, reviews_with_customer=0)

    itf = _find(d, "olist_order_items_dataset.csv")
    if itf is not None:
        it = _read(itf, ("order_id", "product_id", "seller_id"))
        it["_n"] = pd.to_numeric(it["order_item_id"], errors="coerce") if "order_item_id" in it.columns else 1
        it = it.sort_values(["order_id", "_n"], kind="stable")
        per = it.groupby("order_id", sort=False).agg(product=("product_id", "first"), seller=("seller_id", "first"),
                                                     products=("product_id", "nunique"), sellers=("seller_id", "nunique"))
        m = per.reindex(rev["order_id"])
        product, seller = m["product"].to_numpy(object), m["seller"].to_numpy(object)
        counts["reviews_with_items"] = int(m["product"].notna().sum())
        counts["reviews_of_orders_with_several_products"] = int((m["products"] > 1).sum())
        counts["reviews_of_orders_with_several_sellers"] = int((m["sellers"] > 1).sum())

    of = _find(d, "olist_orders_dataset.csv")
    if of is not None:
        o = _read(of, ("order_id", "customer_id", "order_status", "order_delivered_customer_date",
                       "order_estimated_delivery_date"))
        out = _outcomes(o, of.name, counts).drop_duplicates("order_id").set_index("order_id")
        m = out.reindex(rev["order_id"])
        known = m["status"].notna().to_numpy()
        counts["reviews_with_order"] = int(known.sum())
        late, days, und = _lateness(m["delivered_t"].to_numpy(np.float64), m["estimated_t"].to_numpy(np.float64),
                                    m["status"].fillna("").to_numpy(object), rev["created"].to_numpy(np.float64), known)
        cust = m["customer_id"].to_numpy(object)
        has_c = pd.notna(cust)
        account = np.where(has_c, cust, account)
        per_customer = out["customer_id"].value_counts()
        orders_of_account = np.where(has_c, pd.Series(cust).map(per_customer).fillna(1).to_numpy(), 1.0)
        cf = _find(d, "olistcustomerdataset.csv", "olist_customers_dataset.csv")
        if cf is not None:
            c = _read(cf, ("customer_id", "customer_unique_id"))
            c = pd.DataFrame({"customer_id": _strings(c["customer_id"]), "u": _strings(c["customer_unique_id"])})
            c = c.dropna().drop_duplicates("customer_id")
            u = pd.Series(cust).map(c.set_index("customer_id")["u"]).to_numpy(object)
            has_u = pd.notna(u)
            counts["reviews_with_customer"] = int(has_u.sum())
            per_unique = c["u"].value_counts()          # Olist issues one customer_id per order
            account = np.where(has_u, u, account)
            orders_of_account = np.where(has_u, pd.Series(u).map(per_unique).fillna(1).to_numpy(), orders_of_account)
    counts["reviews_with_items_and_order"] = int((pd.notna(product) & ~np.isnan(und)).sum())
    rev["account"] = account
    rev["product"] = product
    rev["seller"] = seller
    rev["delivered_late"] = _boolean(late)
    rev["days_late"] = days
    rev["undelivered"] = _boolean(und)
    reviewed = rev.groupby("account")["order_id"].transform("nunique").to_numpy()
    rev["orders_of_account"] = np.maximum(orders_of_account, reviewed).astype(np.int64)
    return rev[list(REVIEW_COLUMNS)], counts


def olist_deliveries(path_dir: str | Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """(one row per order and seller: ``order_id``, ``seller``, ``delivered_late``, ``days_late``,
    ``undelivered``; counts) from ``olist_orders_dataset.csv`` and ``olist_order_items_dataset.csv`` in
    ``path_dir``: every order whose seller is known, reviewed or not (what :func:`seller_review_stats`
    reads lateness from). An undelivered order is late once the data's last purchase is past its
    estimate; before that its outcome is unknown (counted)."""
    d = Path(path_dir)
    of, itf = d / "olist_orders_dataset.csv", d / "olist_order_items_dataset.csv"
    o = _read(of, ("order_id", "customer_id", "order_status", "order_delivered_customer_date",
                   "order_estimated_delivery_date", "order_purchase_timestamp"))
    it = _read(itf, ("order_id", "seller_id"))
    counts: dict[str, int] = {"orders_read": int(len(o)), "order_items_read": int(len(it))}
    out = _outcomes(o, of.name, counts).dropna(subset=["order_id"]).drop_duplicates("order_id")
    purchase = _parse_dates(o["order_purchase_timestamp"], of.name, "order_purchase_timestamp")
    asof = np.full(len(out), np.nanmax(purchase) if np.isfinite(purchase).any() else np.nan)
    late, days, und = _lateness(out["delivered_t"].to_numpy(np.float64), out["estimated_t"].to_numpy(np.float64),
                                out["status"].to_numpy(object), asof, np.ones(len(out), bool))
    out = pd.DataFrame({"order_id": out["order_id"].to_numpy(object), "delivered_late": _boolean(late),
                        "days_late": days, "undelivered": _boolean(und)})
    pairs = pd.DataFrame({"order_id": _strings(it["order_id"]), "seller": _strings(it["seller_id"])})
    pairs = pairs.dropna().drop_duplicates()
    res = pairs.merge(out, on="order_id", how="inner")
    counts.update(order_sellers=int(len(pairs)), order_sellers_joined=int(len(res)),
                  order_sellers_without_order=int(len(pairs) - len(res)),
                  outcome_unknown=int(res["delivered_late"].isna().sum()))
    return res.reset_index(drop=True), counts


# ------------------------------------------------------------------------------------- detection

@dataclass(frozen=True)
class ReviewConfig:
    """The detectors' and the seller statistics' thresholds (module docstring). The detectors' defaults
    were set on seed 1 of ``benchmarks/health_reviews.py`` (the Olist review sample, and stand-in
    reviews on the order lines, whose busy sellers the review sample lacks); the sellers' thresholds
    are about twice the sample's shares (15 % 1–2 stars, 8 % late)."""

    top_score: int = 5
    burst_days: float = 3.0
    burst_min: int = 4
    burst_ratio: float = 7.0
    burst_min_span_days: float = 180.0
    burst_local_days: float = 30.0
    burst_season: bool = True
    burst_new_share: float = 0.5
    dup_min_words: int = 4
    dup_min_content: int = 2
    dup_long_words: int = 8
    dup_jaccard: float = 0.5
    dup_near_min: int = 3
    dup_shingle: int = 2
    dup_hashes: int = 96
    dup_band_rows: int = 3
    dup_original_days: float = 7.0
    late_days: float = 7.0
    disagree_min: int = 3
    disagree_share: float = 0.6
    fake_min: int = 3
    fake_share: float = 0.3
    prior_reviews: float = 10.0
    min_reviews: int = 5
    poor_share: float = 0.3
    prior_orders: float = 10.0
    min_orders: int = 5
    late_share: float = 0.15
    generic_words: frozenset = field(default=GENERIC_WORDS, repr=False)


def normalise_text(text: pd.Series) -> pd.Series:
    """Lower case, accents and punctuation removed, letters repeated 3+ times collapsed, single spaces."""
    s = text.astype("string").fillna("").str.lower().str.normalize("NFKD")
    s = s.str.replace(r"[\u0300-\u036f]", "", regex=True).str.replace(r"[^a-z0-9]+", " ", regex=True)
    return s.str.replace(r"([a-z])\1{2,}", r"\1", regex=True).str.strip()


def _words(texts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(position of the text, word) of every word of ``texts`` (normalised, single-spaced)."""
    ex = texts.reset_index(drop=True).str.split(" ").explode()
    ok = (ex.notna() & (ex != "")).to_numpy()
    return ex.index.to_numpy()[ok].astype(np.int64), ex.to_numpy(object)[ok]


def _prepare(reviews: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The usable rows of ``reviews`` with every optional column filled in (booleans as 1.0 / 0.0 /
    NaN), and the counts of what was read and skipped."""
    for c in ("review_id", "score", "created"):
        if c not in reviews.columns:
            raise ValueError(f"reviews: no column {c!r} (the columns are {list(reviews.columns)})")
    counts = {"reviews": int(len(reviews))}
    score, why = _parse_scores(reviews["score"], "reviews", "score")
    cr = reviews["created"]
    if pd.api.types.is_datetime64_any_dtype(cr):
        cr = cr.astype("datetime64[s]").astype("int64").where(cr.notna())
    created = pd.to_numeric(cr, errors="coerce").to_numpy(np.float64)
    no_id = reviews["review_id"].isna().to_numpy()
    bad_t = ~np.isfinite(created) & ~np.isnan(score) & ~no_id
    counts["skipped_missing_review_id"] = int(no_id.sum())
    counts.update({f"skipped_{k}": int((v & ~no_id).sum()) for k, v in why.items()})
    counts["skipped_bad_time"] = int(bad_t.sum())
    keep = ~no_id & ~np.isnan(score) & np.isfinite(created)
    n = int(keep.sum())

    def col(name, default=None) -> np.ndarray:
        return reviews[name].to_numpy(object)[keep] if name in reviews.columns else np.full(n, default, object)

    d = pd.DataFrame({"review_id": reviews["review_id"].astype(str).to_numpy(object)[keep], "score": score[keep],
                      "created": created[keep].astype(np.int64)})
    acc = col("account")
    d["account"] = np.where(pd.notna(acc), acc, d["review_id"].to_numpy(object))
    # one review on several orders (Olist does that for split orders) was written by one account
    d["account"] = d.groupby("review_id")["account"].transform("first").to_numpy(object)
    d["order_id"] = col("order_id")
    d["product"] = col("product")
    d["seller"] = col("seller")
    d["text"] = pd.Series(col("text", ""), dtype=object).fillna("").astype(str).to_numpy(object)
    d["days_late"] = pd.to_numeric(pd.Series(col("days_late", np.nan)), errors="coerce").to_numpy(np.float64)
    d["delivered_late"] = _bool_float(col("delivered_late"))
    d["undelivered"] = _bool_float(col("undelivered"))
    ooa = pd.to_numeric(pd.Series(col("orders_of_account", np.nan)), errors="coerce").to_numpy(np.float64)
    d["orders_of_account"] = np.where(np.isnan(ooa), 1.0, ooa)   # unknown: a one-order account, as most are
    counts.update(judged=n, with_product=int(d["product"].notna().sum()), with_seller=int(d["seller"].notna().sum()),
                  with_outcome=int((~np.isnan(d["delivered_late"].to_numpy())).sum()),
                  with_text=int((d["text"].str.strip() != "").sum()))
    return d, counts


def _hits(rows=(), kind="", score=(), reason=(), value=(), expected=np.nan) -> pd.DataFrame:
    rows = np.asarray(rows, np.int64)
    return pd.DataFrame({"row": rows, "kind": np.full(len(rows), kind, object),
                         "score": np.asarray(score, np.float64), "reason": np.asarray(reason, object),
                         "value": np.asarray(value, np.float64),
                         "expected": np.broadcast_to(np.asarray(expected, np.float64), rows.shape).copy()})


def _near_pairs(u_of: np.ndarray, w_of: np.ndarray, n_u: int, shingle: int, threshold: float,
                c: "ReviewConfig") -> tuple[np.ndarray, np.ndarray]:
    """The pairs (a, b) of distinct texts (``u_of``: text of each word ``w_of``, in order) whose sets of
    shingles (runs of ``shingle`` words; a text shorter than that is one shingle) have a Jaccard
    similarity ≥ ``threshold``, estimated by MinHash (``c.dup_hashes`` hashes) over the candidates of
    LSH bands (``c.dup_band_rows`` hashes each)."""
    if not len(u_of):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    base, uu = pd.Series(w_of, dtype=object), pd.Series(u_of)
    sh, whole = base.copy(), np.ones(len(base), bool)
    for j in range(1, shingle):
        sh = sh + " " + base.shift(-j).fillna("")
        whole &= (uu.shift(-j) == uu).to_numpy()
    n_w = np.bincount(u_of, minlength=n_u)
    is_short = (n_w < shingle)[u_of]
    whole_text = base[is_short].groupby(u_of[is_short]).agg(" ".join)
    uw = pd.concat([pd.DataFrame({"u": u_of[whole], "w": sh.to_numpy(object)[whole]}),
                    pd.DataFrame({"u": whole_text.index.to_numpy(np.int64), "w": whole_text.to_numpy(object)})])
    uw = uw.drop_duplicates().sort_values("u", kind="stable")
    h = pd.util.hash_array(uw["w"].to_numpy(object)).astype(np.uint64)
    u_s = uw["u"].to_numpy(np.int64)
    starts = np.r_[0, np.flatnonzero(np.diff(u_s)) + 1]
    present = u_s[starts]
    rng = np.random.default_rng(12345)
    r_ = c.dup_band_rows
    k = max(r_, c.dup_hashes - c.dup_hashes % r_)
    a = rng.integers(1, 2**63 - 1, k, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63 - 1, k, dtype=np.uint64)
    sig = np.full((n_u, k), np.iinfo(np.uint64).max, np.uint64)
    for j in range(0, k, 16):       # hash functions in chunks: memory stays at 16 × the shingles
        sig[present, j:j + 16] = np.minimum.reduceat(h[:, None] * a[None, j:j + 16] + b[None, j:j + 16], starts,
                                                     axis=0)
    mix = np.uint64(0x9E3779B97F4A7C15) ** np.arange(1, r_ + 1, dtype=np.uint64)
    bkey = (sig[present].reshape(len(present), k // r_, r_) * mix).sum(axis=2)
    cand = pd.DataFrame({"band": np.tile(np.arange(k // r_), len(present)), "key": bkey.ravel(),
                         "u": np.repeat(present, k // r_)})
    pairs = cand.merge(cand, on=["band", "key"], suffixes=("_a", "_b"))
    pairs = pairs.loc[pairs["u_a"] != pairs["u_b"], ["u_a", "u_b"]].drop_duplicates()
    ua, ub = pairs["u_a"].to_numpy(np.int64), pairs["u_b"].to_numpy(np.int64)
    sim = (sig[ua] == sig[ub]).mean(axis=1) if len(ua) else np.zeros(0)
    keep = sim >= threshold
    return ua[keep], ub[keep]


class ReviewDetector:
    """Flags bursts, duplicate texts and ratings that disagree with the delivery (module docstring)."""

    def __init__(self, config: ReviewConfig | None = None, **params) -> None:
        self.config = config or ReviewConfig(**params)

    def _bursts(self, d: pd.DataFrame, col: str, label: str) -> pd.DataFrame:
        c = self.config
        ok = d[col].notna().to_numpy()
        if not ok.any():
            return _hits()
        rows = np.flatnonzero(ok)
        code = pd.factorize(d[col].to_numpy()[ok])[0].astype(np.int64)
        t = d["created"].to_numpy(np.int64)[ok]
        w = int(round(c.burst_days * DAY))
        lw = int(round(c.burst_local_days * DAY))
        pad = w + lw
        t0 = int(t.min())
        key = code * (int(t.max()) - t0 + 2 * pad + 1) + (t - t0 + pad)     # groups apart on one time line
        order = np.argsort(key, kind="stable")
        key_s, rows_s, code_s = key[order], rows[order], code[order]
        top_s = d["score"].to_numpy()[rows_s] >= c.top_score
        new_s = d["orders_of_account"].to_numpy()[rows_s] <= 1
        pos = np.flatnonzero(top_s)
        if not len(pos):
            return _hits()
        # the window [t, t + burst_days) opened by each top rating
        kt = key_s[pos]
        idx = np.arange(len(kt))
        end = np.searchsorted(kt, kt + w, "left")
        count = end - idx
        cs_new = np.r_[0, np.cumsum(new_s[pos])]
        new = cs_new[end] - cs_new[idx]
        in_win = np.searchsorted(key_s, kt + w, "left") - np.searchsorted(key_s, kt, "left")
        n_groups = int(code.max()) + 1
        size = np.bincount(code, minlength=n_groups)
        tmin = np.full(n_groups, np.iinfo(np.int64).max)
        tmax = np.full(n_groups, np.iinfo(np.int64).min)
        np.minimum.at(tmin, code, t)
        np.maximum.at(tmax, code, t)
        g = code_s[pos]
        span = np.maximum((tmax - tmin)[g] - w, c.burst_min_span_days * DAY)
        rate = (size[g] - in_win) / span
        if lw > 0:          # the group's rate around the window (a seller busy this month)
            around = np.searchsorted(key_s, kt + w + lw, "left") - np.searchsorted(key_s, kt - lw, "left")
            rate = np.maximum(rate, (around - in_win) / (2 * lw))
        if c.burst_season:  # the rest of the shop's volume in the window against its usual (Black Friday)
            shop = np.sort(d["created"].to_numpy(np.int64))
            tw = t[order][pos]
            rest_win = np.searchsorted(shop, tw + w, "left") - np.searchsorted(shop, tw, "left") - in_win
            rest_usual = (len(shop) - size[g]) * w / max(int(shop[-1] - shop[0]), w)
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = rate * np.where(rest_usual > 0, np.maximum(1.0, rest_win / rest_usual), 1.0)
        expected = rate * w
        bursty = (count >= c.burst_min) & (count >= c.burst_ratio * expected) & (new >= c.burst_new_share * count)
        if not bursty.any():
            return _hits()
        # every top rating inside a bursty window, described by the last bursty window opened before it
        diff = np.zeros(len(kt) + 1, np.int64)
        np.add.at(diff, idx[bursty], 1)
        np.add.at(diff, end[bursty], -1)
        covered = np.cumsum(diff)[:-1] > 0
        last = np.maximum.accumulate(np.where(bursty, idx, -1))[covered]
        cnt, exp_, nw = count[last], expected[last], new[last]
        hit_rows = rows_s[pos][covered]
        reason = ("one of " + pd.Series(cnt).astype(str) + f" top ratings of the {label} within {c.burst_days:g} days ("
                  + pd.Series(np.round(exp_, 2)).astype(str) + " expected from its own history), "
                  + pd.Series(nw).astype(str) + " from one-order accounts")
        return _hits(hit_rows, "burst", cnt / np.maximum(c.burst_min, c.burst_ratio * exp_), reason, cnt, exp_)

    def _duplicates(self, d: pd.DataFrame) -> pd.DataFrame:
        c = self.config
        norm = normalise_text(d["text"])
        row, word = _words(norm)
        n_words = np.bincount(row, minlength=len(d))
        content = np.bincount(row[~pd.Series(word).isin(c.generic_words).to_numpy()], minlength=len(d))
        rows = np.flatnonzero((n_words >= c.dup_min_words)
                              & ((content >= c.dup_min_content) | (n_words >= c.dup_long_words)))
        if len(rows) < 2:
            return _hits()
        ucode, uniq = pd.factorize(norm.to_numpy(object)[rows])
        n_u = len(uniq)
        per = pd.DataFrame({"u": ucode, "acc": d["account"].to_numpy(object)[rows],
                            "t": d["created"].to_numpy(np.int64)[rows], "row": rows})
        u_of, w_of = _words(pd.Series(uniq, dtype="string"))
        ua, ub = _near_pairs(u_of, w_of, n_u, c.dup_shingle, c.dup_jaccard, c)
        # clusters: distinct texts joined by near-same pairs (connected components)
        graph = sp.coo_matrix((np.ones(len(ua)), (ua, ub)), shape=(n_u, n_u))
        comp = connected_components(graph, directed=False)[1]
        per["comp"] = comp[ucode]
        per = per.sort_values(["comp", "t"], kind="stable").reset_index(drop=True)
        cc, st = per["comp"].to_numpy(), per["t"].to_numpy(np.float64)
        n_comp = int(comp.max()) + 1
        size = np.bincount(cc, minlength=n_comp)
        texts = np.bincount(comp, minlength=n_comp)
        accounts = per.groupby("comp")["acc"].nunique().reindex(range(n_comp)).to_numpy()
        start = np.searchsorted(cc, np.arange(n_comp))
        rank = np.arange(len(per)) - start[cc]
        second = np.where(size > 1, st[np.minimum(start + 1, len(per) - 1)], np.inf)
        # the first review of a text copied only later is its original
        original = (rank == 0) & (st <= second[cc] - c.dup_original_days * DAY)
        dup = (accounts >= 2) & ((texts == 1) | (size >= c.dup_near_min))
        hit = dup[cc] & ~original
        if not hit.any():
            return _hits()
        others = size[cc][hit] - 1
        near_same = texts[cc][hit] > 1
        reason = ("its text is shared by " + pd.Series(others).astype(str) + " other review(s), from "
                  + pd.Series(accounts[cc][hit] - 1).astype(str) + " other account(s)"
                  + np.where(near_same, " (some near-same)", ""))
        return _hits(per["row"].to_numpy()[hit], "duplicate_text", (others + 1) / 2.0, reason, others + 1, 1.0)

    def _disagreements(self, d: pd.DataFrame, col: str, label: str) -> pd.DataFrame:
        c = self.config
        und = d["undelivered"].to_numpy() == 1.0
        very = (d["delivered_late"].to_numpy() == 1.0) & ((d["days_late"].to_numpy() >= c.late_days) | und)
        ok = d[col].notna().to_numpy() & very
        if not ok.any():
            return _hits()
        g = pd.DataFrame({"grp": d[col].to_numpy()[ok], "top": d["score"].to_numpy()[ok] >= c.top_score,
                          "row": np.flatnonzero(ok)})
        n_vl = g.groupby("grp")["top"].transform("size").to_numpy()
        n_tl = g.groupby("grp")["top"].transform("sum").to_numpy()
        share = n_tl / n_vl
        hit = g["top"].to_numpy() & (n_tl >= c.disagree_min) & (share >= c.disagree_share)
        if not hit.any():
            return _hits()
        r = g["row"].to_numpy()[hit]
        what = np.where(und[r], "never delivered", "delivered " + pd.Series(np.round(d["days_late"].to_numpy()[r]))
                        .astype("Int64").astype(str) + " days late")
        reason = ("a top rating on an order " + pd.Series(what) + "; " + pd.Series(n_tl[hit]).astype(str) + " of the "
                  + pd.Series(n_vl[hit]).astype(str) + f" very late orders of the {label} were rated top")
        return _hits(r, "disagrees_with_delivery", share[hit] / c.disagree_share, reason, share[hit], c.disagree_share)

    def review_hits(self, reviews: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
        """(the prepared frame; one row per flagged review and kind: ``row`` (into the prepared frame),
        ``kind``, ``score``, ``reason``, ``value``, ``expected``; the counts)."""
        d, counts = _prepare(reviews)
        parts = [self._bursts(d, "product", "product"), self._bursts(d, "seller", "seller"), self._duplicates(d),
                 self._disagreements(d, "product", "product"), self._disagreements(d, "seller", "seller")]
        hits = pd.concat([p for p in parts if len(p)] or [_hits()], ignore_index=True)
        hits = hits.sort_values("score", ascending=False, kind="stable").drop_duplicates(["row", "kind"])
        return d, hits.sort_values(["row", "kind"], kind="stable").reset_index(drop=True), counts

    def flags(self, reviews: pd.DataFrame) -> Flags:
        """Review flags (subject ``review``), then product (``item``) and ``seller`` flags of kind
        ``fake_reviews``; ``checked`` counts what was read, skipped and flagged."""
        c = self.config
        d, hits, counts = self.review_hits(reviews)
        rows = hits["row"].to_numpy(np.int64)
        frames = [pd.DataFrame({"subject": "review", "key": d["review_id"].to_numpy(object)[rows],
                                "detector": "reviews", "kind": hits["kind"].to_numpy(object),
                                "at": d["created"].to_numpy(np.float64)[rows], "score": hits["score"].to_numpy(np.float64),
                                "reason": hits["reason"].to_numpy(object), "value": hits["value"].to_numpy(np.float64),
                                "expected": hits["expected"].to_numpy(np.float64)})]
        flagged = np.zeros(len(d), bool)
        flagged[rows] = True
        for col, subject in (("product", "item"), ("seller", "seller")):
            ok = d[col].notna().to_numpy()
            g = pd.DataFrame({"grp": d[col].to_numpy(object)[ok], "f": flagged[ok], "t": d["created"].to_numpy()[ok]})
            agg = g.groupby("grp").agg(n=("f", "size"), f=("f", "sum"), at=("t", "max"))
            share = (agg["f"] / agg["n"]).to_numpy(np.float64)
            bad = ((agg["f"] >= c.fake_min) & (share >= c.fake_share)).to_numpy()
            a = agg[bad]
            reason = (pd.Series(a["f"].to_numpy()).astype(str) + " of its " + pd.Series(a["n"].to_numpy()).astype(str)
                      + " reviews look fake (" + _pct(share[bad]) + " %)")
            frames.append(pd.DataFrame({"subject": subject, "key": a.index.astype(str).to_numpy(object),
                                        "detector": "reviews", "kind": "fake_reviews",
                                        "at": a["at"].to_numpy(np.float64), "score": share[bad] / c.fake_share,
                                        "reason": reason.to_numpy(object), "value": share[bad],
                                        "expected": c.fake_share}))
            counts[f"{subject}s_flagged"] = int(bad.sum())
        frame = pd.concat([f for f in frames if len(f)] or [frames[0]], ignore_index=True)
        frame = frame.drop_duplicates(["subject", "key", "kind"])     # a review on several orders: once
        counts["reviews_flagged"] = int(flagged.sum())
        return Flags(frame[list(FLAG_COLUMNS)].reset_index(drop=True), counts)


# ------------------------------------------------------------------------------ consumer protection

def seller_review_stats(reviews: pd.DataFrame, orders: pd.DataFrame | None = None,
                        config: ReviewConfig | None = None, exclude=None) -> pd.DataFrame:
    """Per seller (the index): ``reviews``, ``mean_score``, ``mean_score_shrunk``, ``low_share`` (1–2
    stars), ``low_share_shrunk``, ``orders_known`` (orders with a known outcome), ``late_share``,
    ``late_share_shrunk``, ``mean_days_late`` (delivered − estimated, over the delivered ones; negative:
    early), ``poor_reviews``, ``late_deliveries``, ``poor_seller`` and ``reason`` (module docstring).

    Lateness is read from ``orders`` (one row per order and seller with ``seller``, ``delivered_late``
    and optionally ``order_id``, ``days_late``, ``undelivered``: :func:`olist_deliveries`) when given,
    else from the reviews' own orders. ``exclude``: review ids, or :class:`Flags` (their ``review``
    keys), left out of the figures (the reviews flagged as fake, and their orders when lateness comes
    from the reviews). ``attrs`` holds the global figures the shrinkage pulls toward."""
    c = config or ReviewConfig()
    d, _ = _prepare(reviews)
    if exclude is not None:
        keys = exclude.keys("review") if isinstance(exclude, Flags) else {str(x) for x in exclude}
        d = d[~d["review_id"].isin(keys).to_numpy()]
    d = d[d["seller"].notna().to_numpy()]
    low = (d["score"] <= 2).to_numpy()
    gm = float(d["score"].mean()) if len(d) else float("nan")
    glow = float(low.mean()) if len(d) else float("nan")
    s = pd.DataFrame({"seller": d["seller"].to_numpy(object), "score": d["score"].to_numpy(), "low": low})
    g = s.groupby("seller")
    out = pd.DataFrame({"reviews": g.size(), "mean_score": g["score"].mean(), "low_share": g["low"].mean()})
    out["mean_score_shrunk"] = (g["score"].sum() + c.prior_reviews * gm) / (out["reviews"] + c.prior_reviews)
    out["low_share_shrunk"] = (g["low"].sum() + c.prior_reviews * glow) / (out["reviews"] + c.prior_reviews)
    if orders is None:
        o = d.assign(order_id=d["order_id"].where(d["order_id"].notna(), d["review_id"]))
    else:
        for col in ("seller", "delivered_late"):
            if col not in orders.columns:
                raise ValueError(f"orders: no column {col!r} (the columns are {list(orders.columns)})")
        o = orders.reindex(columns=["order_id", "seller", "delivered_late", "days_late", "undelivered"])
        o = o[o["seller"].notna().to_numpy()]
        if o["order_id"].notna().all():
            o = o.drop_duplicates(["order_id", "seller"])
    o = o.drop_duplicates(["order_id", "seller"]) if orders is None else o
    late = _bool_float(o["delivered_late"])
    known = ~np.isnan(late)
    days = pd.to_numeric(o["days_late"], errors="coerce").to_numpy(np.float64)
    delivered = _bool_float(o["undelivered"]) != 1.0
    lo = pd.DataFrame({"seller": o["seller"].to_numpy(object)[known], "late": late[known],
                       "days": np.where(delivered, days, np.nan)[known]})
    gl = float(lo["late"].mean()) if len(lo) else float("nan")
    lg = lo.groupby("seller")
    lt = pd.DataFrame({"orders_known": lg.size(), "late_share": lg["late"].mean(), "mean_days_late": lg["days"].mean()})
    lt["late_share_shrunk"] = (lg["late"].sum() + c.prior_orders * gl) / (lt["orders_known"] + c.prior_orders)
    out = out.join(lt, how="outer")
    out["reviews"] = out["reviews"].fillna(0).astype(np.int64)
    out["orders_known"] = out["orders_known"].fillna(0).astype(np.int64)
    out["poor_reviews"] = ((out["reviews"] >= c.min_reviews) & (out["low_share_shrunk"] >= c.poor_share)).astype(bool)
    out["late_deliveries"] = ((out["orders_known"] >= c.min_orders)
                              & (out["late_share_shrunk"] >= c.late_share)).astype(bool)
    out["poor_seller"] = out["poor_reviews"] | out["late_deliveries"]
    r_poor = np.where(out["poor_reviews"], "poorly reviewed (" + _pct(out["low_share"].fillna(0)).to_numpy(object)
                      + " % 1–2 stars)", "")
    r_late = np.where(out["late_deliveries"], "often delivered late (" + _pct(out["late_share"].fillna(0))
                      .to_numpy(object) + " % of orders)", "")
    out["reason"] = np.where((r_poor != "") & (r_late != ""), r_poor + ", " + r_late, r_poor + r_late)
    out.index.name = "seller"
    out = out[["reviews", "mean_score", "mean_score_shrunk", "low_share", "low_share_shrunk", "orders_known",
               "late_share", "late_share_shrunk", "mean_days_late", "poor_reviews", "late_deliveries",
               "poor_seller", "reason"]]
    out.attrs.update(global_mean_score=gm, global_low_share=glow, global_late_share=gl)
    return out


def poor_seller_flags(stats: pd.DataFrame, config: ReviewConfig | None = None, at: float = float("nan")) -> Flags:
    """Flags (subject ``seller``, kinds ``poor_reviews`` and ``late_deliveries``) of
    :func:`seller_review_stats`' output, the reason the shopper-readable text; ``at``: when (unix s)."""
    c = config or ReviewConfig()
    frames = []
    for kind, shrunk, raw, thr, text in (("poor_reviews", "low_share_shrunk", "low_share", c.poor_share,
                                          ("poorly reviewed (", " % 1–2 stars)")),
                                         ("late_deliveries", "late_share_shrunk", "late_share", c.late_share,
                                          ("often delivered late (", " % of orders)"))):
        s = stats[stats[kind].to_numpy(bool)]
        frames.append(pd.DataFrame({"subject": "seller", "key": s.index.astype(str).to_numpy(object),
                                    "detector": "reviews", "kind": kind, "at": float(at),
                                    "score": s[shrunk].to_numpy(np.float64) / thr,
                                    "reason": (text[0] + _pct(s[raw]) + text[1]).to_numpy(object),
                                    "value": s[shrunk].to_numpy(np.float64), "expected": thr}))
    frame = pd.concat(frames, ignore_index=True)
    return Flags(frame[list(FLAG_COLUMNS)].reset_index(drop=True),
                 {"sellers": int(len(stats)), "judged_on_reviews": int((stats["reviews"] >= c.min_reviews).sum()),
                  "judged_on_deliveries": int((stats["orders_known"] >= c.min_orders).sum())})


# ------------------------------------------------------------------------------ the training filter

class FakeReviewsConfig(StageConfig):
    """``params`` of the ``fake_reviews`` filter: any :class:`ReviewConfig` field (thresholds)."""

    model_config = ConfigDict(frozen=True, extra="allow")


def reviews_of(data) -> pd.DataFrame | None:
    """The review frame of the module docstring for the reviews ``data.meta["reviews"]`` holds
    (``review_id``, ``session_id`` (the order), ``score``, ``created``, ``text``; the Olist loader
    attaches it), joined to ``data``: product = the order's first item bought, seller = its
    ``seller`` in the item table, account = the order's user, ``orders_of_account`` = the user's
    orders, delivery outcomes from ``data.meta["orders"]``. Reviews written after the data's last
    event are left out (a temporal split does not see them); None without reviews."""
    meta = getattr(data, "meta", None) or {}
    rev = meta.get("reviews")
    if rev is None or not len(rev) or data.sessions is None:
        return None
    ev = data.events
    now = float(ev["timestamp"].max()) if len(ev) else 0.0
    rev = rev[pd.to_numeric(rev["created"], errors="coerce").to_numpy(np.float64) <= now]
    sess = data.sessions.to_index(rev["session_id"].astype(str).to_numpy(dtype=object), missing=-1)
    buy = ev[(ev["behaviour"].to_numpy() == 4) & (ev["session_idx"].to_numpy() >= 0)]
    first = buy.sort_values("timestamp", kind="stable").drop_duplicates("session_idx")
    item_of = pd.Series(first["item_idx"].to_numpy(), index=first["session_idx"].to_numpy())
    user_of = pd.Series(first["user_idx"].to_numpy(), index=first["session_idx"].to_numpy())
    orders_per_user = buy.groupby("user_idx")["session_idx"].nunique()
    item = item_of.reindex(sess).to_numpy(np.float64)
    user = user_of.reindex(sess).to_numpy(np.float64)
    has_i, has_u = np.isfinite(item), np.isfinite(user)
    table = data.item_table
    seller = np.full(len(rev), None, object)
    product = np.full(len(rev), None, object)
    product[has_i] = data.items.to_external(item[has_i].astype(np.int64)).astype(object)
    if table is not None and "seller" in table.columns:
        seller[has_i] = table["seller"].to_numpy(object)[item[has_i].astype(np.int64)]
    account = np.where(has_u, "u" + pd.Series(np.nan_to_num(user)).astype(np.int64).astype(str).to_numpy(object),
                       rev["review_id"].astype(str).to_numpy(object))
    n_orders = np.where(has_u, orders_per_user.reindex(np.nan_to_num(user).astype(np.int64)).fillna(1).to_numpy(), 1.0)
    late = days = und = np.full(len(rev), np.nan)
    orders = meta.get("orders")
    if orders is not None and len(orders):
        o = orders.drop_duplicates("session_id").set_index("session_id").reindex(rev["session_id"].astype(str))
        known = o["status"].notna().to_numpy()
        late, days, und = _lateness(o["delivered"].to_numpy(np.float64), o["estimated"].to_numpy(np.float64),
                                    o["status"].fillna("").to_numpy(object), rev["created"].to_numpy(np.float64), known)
    return pd.DataFrame({"review_id": rev["review_id"].astype(str).to_numpy(object),
                         "order_id": rev["session_id"].astype(str).to_numpy(object), "account": account,
                         "product": product, "seller": seller, "score": rev["score"].to_numpy(np.float64),
                         "created": rev["created"].to_numpy(np.float64), "text": rev["text"].to_numpy(object),
                         "delivered_late": _boolean(late), "days_late": days, "undelivered": _boolean(und),
                         "orders_of_account": n_orders.astype(np.int64)})


class FakeReviewsFilter(TrainingFilter):
    """``[[training_filters]] name = "fake_reviews"``: the orders whose review :class:`ReviewDetector`
    flags (bursts, copied texts, top ratings that disagree with late deliveries) are left out of
    training, purchase and rating alike (a fake review usually comes with a fake order); the report
    counts their events. The reviews come from ``data.meta["reviews"]`` (:func:`reviews_of`);
    without them the filter keeps everything."""

    name = "fake_reviews"
    Config = FakeReviewsConfig

    def _drop(self, data) -> dict[str, np.ndarray]:
        rev = reviews_of(data)
        if rev is None or not len(rev):
            return {}
        det = ReviewDetector(ReviewConfig(**dict(self.config.model_extra or {})))
        d, hits, _ = det.review_hits(rev)
        orders = d["order_id"].to_numpy(object)[hits["row"].to_numpy(np.int64)]
        sess = data.sessions.to_index(np.asarray(pd.unique(orders), dtype=object), missing=-1)
        bad = np.zeros(len(data.sessions), bool)
        bad[sess[sess >= 0]] = True
        s = data.events["session_idx"].to_numpy()
        return {"events of orders with fake reviews": (s >= 0) & bad[np.maximum(s, 0)]}
