"""Fake reviews measured with injected campaigns on the real Olist reviews
(``python benchmarks/health_reviews.py [--write]``).

reviews: the Olist review sample (``../shared/data/olist/sample``, 6,123 reviews: scores, creation dates, titles and texts, loaded by ``shoprec.health.reviews.olist_reviews``), joined where the samples allow to the orders (delivered vs estimated dates, the customer), the order items (product and seller) and the customers. The samples are the first rows of independently ordered files, so of the 6,123 reviews only 613 find their order, 546 their product and seller, 39 both, and 69 a ``customer_unique_id`` (every other account is a one-order ``customer_id`` or the order itself, so the one-order-account test of a burst cannot discriminate here): the product, seller and delivery rules see about a tenth of the real reviews, the text rule all of them, and no real product has more than 5 reviews. So the detectors are also run on stand-in reviews with busy histories: one per order and seller of the order-items sample (8,904), dated the day after delivery, scored by draws from the real scores given the delivery's lateness, no text (``standin_reviews``). Injected (seeded; ``inject_fake_reviews`` states the protocol): 60 campaigns of 4–12 fake five-star reviews from new one-order accounts (about 500 fakes, 8 % of the reviews): 35 % bursts on one real product over 1–3 days with templated near-duplicate texts, 35 % such bursts with texts copied (lightly edited) from real reviews written before, 30 % spread over 20–90 days on one real seller's orders delivered 8–45 days late or never delivered; a quarter of the bursts are on late orders too; some fakes carry no text or a stock phrase. A stress run puts 100 campaigns of only 2–4 fakes on the reviews. The thresholds were set on seed 1; seeds 2 and 3 are reported. A review flag is a true positive when it names a fake; recall per kind is over the fakes built with that signature (a burst; a text reused by another fake or copied from a real review in the frame, stock phrases excepted; a late or missing delivery), recall over all kinds over every fake, precision per kind over every flag of that kind. Collateral damage: the share of the real (or stand-in) reviews flagged, of those that have a product, and of the sellers without fakes flagged ``fake_reviews``. Also reported: what the untouched data raises, and the consumer-protection figures of its sellers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from benchmarks_md import add_write_options, finish  # noqa: E402
from machine import CoreShare  # noqa: E402

from shoprec.health.reviews import (ReviewDetector, olist_deliveries, olist_reviews, poor_seller_flags,  # noqa: E402
                                    seller_review_stats)

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data"
TITLE = "Fake reviews with injected campaigns (Olist)"
DAY = 86_400
KINDS = ("burst", "duplicate_text", "disagrees_with_delivery")

# A campaign picks one template; each fake fills every {slot} with one of its options.
TEMPLATES = [
    ("{Amei} o produto, superou todas as minhas expectativas! Material de {primeira}, acabamento {impecavel} e a "
     "entrega foi {rapida}. Já indiquei para toda a família."),
    "Comprei {receosa} mas me surpreendi: o produto é {lindo} e veio {embalado}. Vendedor {atencioso}, nota mil!",
    ("Melhor compra que fiz {ano}! Qualidade {excelente}, chegou {dias} antes do prazo. Recomendo {olhos}, "
     "vale muito a pena."),
    "Produto {original} e de {otima} qualidade, exatamente como {foto}. Loja {confiavel}, vou comprar {denovo}.",
    "{Nota}! Chegou {rapidinho}, tudo {certinho} e o preço {imbativel}. Podem comprar sem medo, {vale}.",
    ("Estou {satisfeita} com a compra, o aparelho funciona {perfeitamente} e o atendimento foi {dez}. Parabéns à "
     "equipe {loja}!"),
    "Produto muito bom, recomendo!",
    "Gostei muito, chegou antes do prazo.",
]
STOCK_TEMPLATES = TEMPLATES[-2:]        # what a thousand real shoppers write alike: no signature
SLOTS = {
    "Amei": ["Amei", "Adorei", "Gostei demais de", "Simplesmente amei"], "primeira": ["primeira", "ótima qualidade",
    "primeiríssima"], "impecavel": ["impecável", "perfeito", "caprichado"], "rapida": ["super rápida", "rapidíssima",
    "muito rápida", "antes do prazo"], "receosa": ["meio receosa", "com medo", "desconfiado", "sem muita fé"],
    "lindo": ["lindo", "maravilhoso", "perfeito", "muito bonito"], "embalado": ["muito bem embalado", "bem protegido",
    "embalado com carinho"], "atencioso": ["atencioso", "muito educado", "super prestativo"],
    "ano": ["este ano", "nos últimos tempos", "na internet"], "excelente": ["excelente", "impecável", "surpreendente"],
    "dias": ["dois dias", "uma semana", "três dias"], "olhos": ["de olhos fechados", "sem medo", "a todos"],
    "original": ["original", "genuíno", "autêntico"], "otima": ["ótima", "excelente", "altíssima"],
    "foto": ["na foto", "no anúncio", "na descrição"], "confiavel": ["confiável", "séria", "honesta"],
    "denovo": ["de novo com certeza", "novamente", "mais vezes"], "Nota": ["Nota 10", "Nota mil", "Show de bola"],
    "rapidinho": ["rapidinho", "voando", "super rápido"], "certinho": ["certinho", "perfeito", "em ordem"],
    "imbativel": ["imbatível", "ótimo", "justo"], "vale": ["vale cada centavo", "vale a pena", "compensa demais"],
    "satisfeita": ["muito satisfeita", "feliz demais", "encantada"], "perfeitamente": ["perfeitamente",
    "muito bem", "sem nenhum problema"], "dez": ["nota dez", "excelente", "maravilhoso"],
    "loja": ["da loja", "do vendedor", "toda"],
}


def _fill(template: str, rng: np.random.Generator) -> str:
    out = template
    for slot, options in SLOTS.items():
        if "{" + slot + "}" in out:
            out = out.replace("{" + slot + "}", options[int(rng.integers(len(options)))])
    return _vary(out, rng)


def _vary(text: str, rng: np.random.Generator) -> str:
    """A light edit: lower case, or the punctuation changed, or an exclamation added, or as it is."""
    v = int(rng.integers(4))
    return text.lower() if v == 0 else text.replace("!", ".").replace(",", "") if v == 1 else \
        text.rstrip(".!") + "!!" if v == 2 else text


def inject_fake_reviews(reviews: pd.DataFrame, seed: int, n_campaigns: int = 60, min_size: int = 4,
                        max_size: int = 12, texts_from: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the review frame with fake reviews added, truth: one row per fake: ``review_id``, ``campaign``,
    ``style``, ``target``, and one bool per signature ``burst``, ``duplicate_text``,
    ``disagrees_with_delivery``). The protocol, all draws from ``numpy.random.default_rng(seed)``:

    ``n_campaigns`` campaigns of ``min_size``–``max_size`` fake reviews, all rated 5, each from its own
    new account with one order (``orders_of_account`` 1), created on whole days (as Olist's are):

    * 35 % ``burst_template``: one real product (drawn without repeats among those whose reviews found
      their items; its seller is the product's), every fake within 1–3 days from a day drawn uniformly
      over the sample's span; texts: 60 % one template of :data:`TEMPLATES` (the campaign's) with its
      slots filled at random and lightly edited (near-duplicates; two of the eight templates are stock
      phrases a detector must not count), 15 % a real stock phrase (a text of at most two words from
      the real reviews), 25 % none. Signatures: burst; duplicate_text when at least two of its fakes
      carry a template text.
    * 35 % ``burst_copied``: the same, the texts copied instead, lightly edited, from 1–3 real
      reviews of four or five stars with at least five words written before the campaign (70 % of the
      fakes; the rest none). Signatures: burst, duplicate_text for the fakes with a copied text.
    * 30 % ``late_seller``: one real seller (without repeats), each fake on one of its products, spread
      uniformly over 20–90 days; every order delivered 8–45 days after its estimate (80 %) or never
      delivered and 5–30 days overdue when reviewed (20 %). Texts: 60 % none, 25 % a real stock phrase,
      15 % a template. Signatures: disagrees_with_delivery; duplicate_text as above.

    A quarter of the burst campaigns are on such late orders too (signature disagrees_with_delivery);
    the other fakes' orders are of unknown outcome (90 %, as most real reviews are) or on time (2–20
    days early). Texts are drawn from ``texts_from`` (default: ``reviews`` itself)."""
    rng = np.random.default_rng(seed)
    real = reviews
    pairs = real.loc[real["product"].notna(), ["product", "seller"]].drop_duplicates("product")
    sellers = pairs["seller"].drop_duplicates().to_numpy(object)
    t_lo, t_hi = int(real["created"].min()), int(real["created"].max())
    src = real if texts_from is None else texts_from
    words = src["text"].fillna("").str.split().str.len().to_numpy()
    stock = src.loc[(words >= 1) & (words <= 2), "text"].to_numpy(object)
    copyable = src[(words >= 5) & (src["score"] >= 4)]
    styles = rng.choice(["burst_template", "burst_copied", "late_seller"], n_campaigns, p=[0.35, 0.35, 0.30])
    products = iter(rng.permutation(pairs.index.to_numpy()))
    seller_iter = iter(rng.permutation(sellers))
    rows, truth = [], []
    n = 0
    for camp, style in enumerate(styles):
        k = int(rng.integers(min_size, max_size + 1))
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        late = style == "late_seller" or rng.random() < 0.25
        if style == "late_seller":
            seller = next(seller_iter)
            own = pairs.loc[pairs["seller"] == seller, "product"].to_numpy(object)
            prod = own[rng.integers(len(own), size=k)]
            span = int(rng.integers(20, 91))
            start = int(rng.integers(t_lo, t_hi - span * DAY)) // DAY * DAY
            created = start + rng.integers(0, span + 1, size=k) * DAY
            target = seller
        else:
            p = pairs.loc[next(products)]
            prod, seller = np.full(k, p["product"], object), p["seller"]
            days = int(rng.integers(1, 4))
            start = int(rng.integers(t_lo, t_hi - 3 * DAY)) // DAY * DAY
            created = start + rng.integers(0, days, size=k) * DAY
            target = p["product"]
        texts = np.full(k, "", object)
        kind_text = np.zeros(k, bool)
        u = rng.random(k)
        if style == "burst_copied":
            pool = copyable[copyable["created"] < start]["text"].to_numpy(object)
            if len(pool):
                src = pool[rng.choice(len(pool), min(len(pool), int(rng.integers(1, 4))), replace=False)]
                use = u < 0.7
                which = rng.integers(len(src), size=k)
                texts[use] = [_vary(src[w], rng) for w in which[use]]
                # a copy is a duplicate of its original when that is in the frame, else of another copy
                again = np.bincount(which[use], minlength=len(src))[which] >= 2
                kind_text = use & (again if texts_from is not None else True)
        else:
            t_share, s_share = (0.6, 0.15) if style == "burst_template" else (0.15, 0.25)
            tpl = u < t_share
            stk = (u >= t_share) & (u < t_share + s_share)
            texts[tpl] = [_fill(template, rng) for _ in range(int(tpl.sum()))]
            texts[stk] = stock[rng.integers(len(stock), size=int(stk.sum()))]
            kind_text = tpl & (tpl.sum() >= 2) & (template not in STOCK_TEMPLATES)
        und = np.zeros(k, bool)
        if late:
            und = rng.random(k) < 0.2
            days_late = np.where(und, rng.uniform(5, 30, k), rng.uniform(8, 45, k))
            delivered_late = np.ones(k)
        else:
            known = rng.random(k) < 0.1
            days_late = np.where(known, -rng.uniform(2, 20, k), np.nan)
            delivered_late = np.where(known, 0.0, np.nan)
        ids = [f"fake-{seed}-{n + j}" for j in range(k)]
        rows.append(pd.DataFrame({
            "review_id": ids, "order_id": [f"fake-order-{seed}-{n + j}" for j in range(k)],
            "account": [f"fake-account-{seed}-{n + j}" for j in range(k)], "product": prod, "seller": seller,
            "score": 5, "created": created.astype(np.int64), "text": texts,
            "delivered_late": pd.array(pd.Series(delivered_late).map({1.0: True, 0.0: False}), dtype="boolean"),
            "days_late": days_late, "undelivered": pd.array(np.where(np.isnan(delivered_late), None, und),
                                                            dtype="boolean"),
            "orders_of_account": 1}))
        truth.append(pd.DataFrame({"review_id": ids, "campaign": camp, "style": style, "target": target,
                                   "burst": style != "late_seller", "duplicate_text": kind_text,
                                   "disagrees_with_delivery": late}))
        n += k
    fakes = pd.concat(rows, ignore_index=True)
    out = pd.concat([real, fakes[real.columns]], ignore_index=True)
    return out, pd.concat(truth, ignore_index=True)


def standin_reviews(sample: Path, reviews: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Stand-in organic reviews with the busy histories the review sample lacks: one per order and
    seller of the order-items sample (8,904), created the day after its delivery (its real delivery
    date where the orders sample has it, else its shipping limit plus a transit time drawn from the
    orders that have both), scored by a draw from the real reviews' scores given the delivery's
    lateness (late, on time, unknown), no text, from one-order accounts."""
    rng = np.random.default_rng(seed)
    it = pd.read_csv(sample / "olist_order_items_dataset.csv", dtype=str)
    it = it.sort_values(["order_id", "order_item_id"]).drop_duplicates(["order_id", "seller_id"])
    dl, _ = olist_deliveries(sample)
    o = pd.read_csv(sample / "olist_orders_dataset.csv", dtype=str)
    fmt = "%m/%d/%Y %H:%M"
    limit = pd.to_datetime(it["shipping_limit_date"], format=fmt).astype("datetime64[s]").astype("int64").to_numpy()
    deliv = pd.to_datetime(o.set_index("order_id")["order_delivered_customer_date"].reindex(it["order_id"]),
                           format=fmt, errors="coerce")
    has = deliv.notna().to_numpy()
    dsec = deliv.astype("datetime64[s]").astype("int64").to_numpy(np.float64)
    transit = (dsec - limit)[has]
    t = np.where(has, dsec, limit + rng.choice(transit, len(it)))
    created = (np.floor(t / DAY) + 1).astype(np.int64) * DAY
    m = dl.drop_duplicates(["order_id", "seller"]).set_index(["order_id", "seller"]).reindex(
        pd.MultiIndex.from_arrays([it["order_id"], it["seller_id"]]))
    late = m["delivered_late"].to_numpy(dtype=float, na_value=np.nan)
    score = np.zeros(len(it), np.int64)
    rl = reviews["delivered_late"].to_numpy(dtype=float, na_value=np.nan)
    for cls in (1.0, 0.0, np.nan):
        pool = reviews["score"].to_numpy()[(rl == cls) if cls == cls else np.isnan(rl)]
        sel = (late == cls) if cls == cls else np.isnan(late)
        score[sel] = rng.choice(pool, int(sel.sum()))
    n = len(it)
    ids = ("standin-" + it["order_id"] + "-" + it["seller_id"]).to_numpy(object)
    return pd.DataFrame({"review_id": ids, "order_id": it["order_id"].to_numpy(object), "account": ids,
                         "product": it["product_id"].to_numpy(object), "seller": it["seller_id"].to_numpy(object),
                         "score": score, "created": created, "text": np.full(n, "", object),
                         "delivered_late": m["delivered_late"].to_numpy(), "days_late": m["days_late"].to_numpy(),
                         "undelivered": m["undelivered"].to_numpy(), "orders_of_account": 1})[list(reviews.columns)]


def score(flags, reviews: pd.DataFrame, truth: pd.DataFrame) -> dict:
    f = flags.frame
    rv = f[f["subject"] == "review"]
    fake = set(truth["review_id"])
    real = reviews.loc[~reviews["review_id"].isin(fake), ["review_id", "product"]].drop_duplicates("review_id")
    any_flag = set(rv["key"])
    out = {"fakes": len(fake), "real_reviews": len(real), "campaigns": int(truth["campaign"].nunique()),
           "recall": len(any_flag & fake) / len(fake),
           "precision": len(any_flag & fake) / len(any_flag) if any_flag else 0.0,
           "real_flagged": len(any_flag - fake), "real_flagged_share": len(any_flag - fake) / len(real),
           "real_with_product_flagged_share": float(real.loc[real["product"].notna(), "review_id"].isin(any_flag).mean())}
    for k in KINDS:
        fk = set(rv.loc[rv["kind"] == k, "key"])
        sig = set(truth.loc[truth[k].to_numpy(bool), "review_id"])
        out[k] = {"with_signature": len(sig), "recall": len(fk & sig) / len(sig) if sig else float("nan"),
                  "flags": len(fk), "precision": len(fk & fake) / len(fk) if fk else float("nan")}
    for style, g in truth.groupby("style"):
        out[f"recall_{style}"] = float(g["review_id"].isin(any_flag).mean())
    size = truth.groupby("campaign")["review_id"].transform("size")
    out["by_size_recall"] = {str(k): float(g["review_id"].isin(any_flag).mean()) for k, g in truth.groupby(size)}
    for subject, col in (("seller", "seller"), ("item", "product")):
        flagged = flags.keys(subject, "fake_reviews")
        touched = set(reviews.loc[reviews["review_id"].isin(fake), col].dropna().astype(str))
        untouched = set(reviews[col].dropna().astype(str)) - touched
        out[f"{subject}s_with_fakes"] = len(touched)
        out[f"{subject}s_with_fakes_flagged"] = len(flagged & touched) / len(touched) if touched else float("nan")
        out[f"{subject}s_without_fakes"] = len(untouched)
        out[f"{subject}s_without_fakes_flagged"] = len(flagged & untouched) / len(untouched) if untouched else 0.0
    return out


def _line(r: dict) -> str:
    return (f"seed {r['seed']} {r['data']}: recall {r['recall']:.3f} precision {r['precision']:.3f} real flagged "
            f"{r['real_flagged_share']:.2%} " + " ".join(f"{k} {r[k]['recall']:.3f}/{r[k]['precision']:.3f}"
                                                         for k in KINDS))


def run(data: Path, seeds=(1, 2, 3), n_campaigns: int = 60) -> dict:
    sample = data / "olist" / "sample"
    reviews, counts = olist_reviews(sample)
    standins = standin_reviews(sample, reviews)
    det = ReviewDetector()
    t0 = time.perf_counter()
    clean = det.flags(reviews)
    secs = time.perf_counter() - t0
    clean_standins = det.flags(standins)
    rows = []
    for name, base, kw in (("reviews", reviews, {}), ("order lines", standins, {"texts_from": reviews}),
                           ("reviews, small campaigns", reviews, {"n_campaigns": 100, "min_size": 2, "max_size": 4})):
        for seed in seeds:
            frame, truth = inject_fake_reviews(base, seed, **({"n_campaigns": n_campaigns} | kw))
            t0 = time.perf_counter()
            fl = det.flags(frame)
            rows.append({"data": name, "seed": seed, "seconds": time.perf_counter() - t0, **score(fl, frame, truth)})
            print(_line(rows[-1]), flush=True)
    deliveries, dcounts = olist_deliveries(sample)
    stats = seller_review_stats(reviews, deliveries, det.config, exclude=clean)
    pf = poor_seller_flags(stats, det.config)
    c = det.config
    sellers = {"sellers": int(len(stats)), "with_reviews": int((stats["reviews"] > 0).sum()),
               "judged_on_reviews": int((stats["reviews"] >= c.min_reviews).sum()),
               "judged_on_deliveries": int((stats["orders_known"] >= c.min_orders).sum()),
               "poor_reviews": int(stats["poor_reviews"].sum()), "late_deliveries": int(stats["late_deliveries"].sum()),
               "global_low_share": stats.attrs["global_low_share"], "global_late_share": stats.attrs["global_late_share"],
               "max_reviews": int(stats["reviews"].max()), "max_orders_known": int(stats["orders_known"].max()),
               "max_low_share_shrunk": float(stats.loc[stats["reviews"] >= c.min_reviews, "low_share_shrunk"].max()),
               "max_late_share_shrunk": float(stats.loc[stats["orders_known"] >= c.min_orders,
                                                        "late_share_shrunk"].max()),
               "flags": pf.frame[["key", "kind", "reason"]].to_dict("records")}
    return {"protocol": __doc__, "counts": counts, "delivery_counts": dcounts, "clean": clean.checked,
            "clean_flags": clean.counts(), "clean_seconds": secs, "standins": len(standins),
            "standin_flags": clean_standins.counts(), "standins_flagged": clean_standins.checked["reviews_flagged"],
            "rows": rows, "sellers": sellers, "config": {k: v for k, v in c.__dict__.items() if k != "generic_words"}}


def table_lines(res: dict) -> list[str]:
    out = ["| data | seed | fakes (campaigns) | recall: burst | duplicate text | disagrees with delivery | "
           "recall: all | precision: burst | duplicate text | disagrees | all | real reviews flagged | … of those "
           "with a product | sellers with fakes flagged | sellers without fakes flagged | scan s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        seed = f"{r['seed']} (tuning)" if r["seed"] == 1 else str(r["seed"])
        rec = " | ".join(f"{r[k]['recall']:.3f}" for k in KINDS)
        prec = " | ".join("–" if r[k]["flags"] == 0 else f"{r[k]['precision']:.3f}" for k in KINDS)
        out.append(f"| {r['data']} | {seed} | {r['fakes']} ({r['campaigns']}) | {rec} | **{r['recall']:.3f}** | "
                   f"{prec} | **{r['precision']:.3f}** | {r['real_flagged']} ({r['real_flagged_share']:.2%}) | "
                   f"{r['real_with_product_flagged_share']:.2%} | {r['sellers_with_fakes_flagged']:.1%} | "
                   f"{r['sellers_without_fakes_flagged']:.2%} | {r['seconds']:.2f} |")
    ok = lambda b: "yes" if b else "**no**"       # noqa: E731
    out += ["", "| target (seeds 2 and 3, worst seed) | reviews | order lines | reviews, small campaigns (a stress "
            "test beyond the protocol) |",
            "|---|---:|---:|---:|"]
    names = ("reviews", "order lines", "reviews, small campaigns")
    rep = {n: [r for r in res["rows"] if r["data"] == n and r["seed"] != 1] for n in names}
    for label, f, good in (("recall of injected fake reviews ≥ 0.95", lambda rs: min(r["recall"] for r in rs),
                            lambda v: v >= 0.95),
                           ("real reviews flagged ≤ 1 %", lambda rs: max(r["real_flagged_share"] for r in rs),
                            lambda v: v <= 0.01),
                           ("precision ≥ 0.90", lambda rs: min(r["precision"] for r in rs), lambda v: v >= 0.90)):
        cells = []
        for n in names:
            if not rep[n]:
                cells.append("not run")
                continue
            v = f(rep[n])
            cells.append(f"{v:.2%}: {ok(good(v))}" if "flagged" in label else f"{v:.3f}: {ok(good(v))}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    main_rows = rep["reviews"]
    styles = sorted(k for k in (main_rows[0] if main_rows else {}) if k.startswith("recall_"))
    c, cl, s = res["counts"], res["clean"], res["sellers"]
    flags = ", ".join(f"{k} {v:,}" for k, v in sorted(res["clean_flags"].items())) or "none"
    sflags = ", ".join(f"{k} {v:,}" for k, v in sorted(res["standin_flags"].items())) or "none"
    small = rep["reviews, small campaigns"]
    out += ["", "Recall by campaign style (reviews, seeds 2 and 3): " + "; ".join(
        f"{st.removeprefix('recall_')} " + " / ".join(f"{r[st]:.3f}" for r in main_rows) for st in styles) + "."
        + ("" if not small else " Small campaigns, recall by the campaign's number of fakes: " + "; ".join(
            f"{k}: " + " / ".join(f"{r['by_size_recall'].get(k, float('nan')):.3f}" for r in small)
            for k in sorted({k for r in small for k in r["by_size_recall"]}, key=int)) + "."),
        "", f"Untouched data: {c['reviews']:,} reviews read ({c['rows_read']:,} rows; skipped: "
        + ", ".join(f"{k.removeprefix('skipped_').replace('_', ' ')} {v}" for k, v in c.items()
                    if k.startswith("skipped_")) + f"); {c['reviews_with_order']:,} found their order, "
        f"{c['reviews_with_items']:,} their product and seller, {c['reviews_with_items_and_order']:,} both, "
        f"{c['reviews_with_customer']:,} their customer; {cl['with_text']:,} have a text. Flags raised: {flags} "
        f"({cl['reviews_flagged']:,} reviews, {cl['reviews_flagged'] / max(c['reviews'], 1):.2%}; scan "
        f"{res['clean_seconds']:.2f} s). The {res['standins']:,} stand-in order-line reviews raise: {sflags} "
        f"({res['standins_flagged']:,} reviews, {res['standins_flagged'] / max(res['standins'], 1):.2%}).",
        "", f"Sellers (consumer protection, fake-flagged reviews left out; lateness over every order of the samples "
        f"whose seller is known, {res['delivery_counts']['order_sellers_joined']:,} order–seller pairs): "
        f"{s['sellers']:,} sellers, {s['with_reviews']:,} with a review (at most {s['max_reviews']}); "
        f"{s['judged_on_reviews']:,} have the {res['config']['min_reviews']} reviews needed to be judged on them and "
        f"{s['judged_on_deliveries']:,} the {res['config']['min_orders']} known deliveries (at most "
        f"{s['max_orders_known']}); flagged: poorly reviewed {s['poor_reviews']}, often late {s['late_deliveries']} "
        f"(global shares: 1–2 stars {s['global_low_share']:.1%}, late {s['global_late_share']:.1%}; the highest "
        f"shrunk shares among the sellers judged: {s['max_low_share_shrunk']:.1%} and {s['max_late_share_shrunk']:.1%}, against the "
        f"thresholds {res['config']['poor_share']:.0%} and {res['config']['late_share']:.0%})."
        + ("" if not s["flags"] else " Reasons shown: " + "; ".join(f"“{f['reason']}”" for f in s["flags"][:5]) + ".")]
    return out


def reviews_lines(path: Path | None = None) -> list[str]:
    """The BENCHMARKS.md section (the form of ``health.health_lines``), from the saved results."""
    p = path or RESULTS / "health-reviews.json"
    if not p.exists():
        return []
    res = json.loads(p.read_text())
    m = res["machine"]
    paras = [" ".join(x.strip() for x in para.split("\n")) for para in res["protocol"].split("\n\n")]
    body = next((x for x in paras if x.startswith("reviews:")), " ".join(paras[1:]))
    return [f"### {TITLE}", "", f"Measured {res['date']} on {m['cpus']} cores, {m['memory_gib']} GiB, Python "
            f"{m['python']}.", "Reproduce: `python benchmarks/health_reviews.py --write`.", "", body, "",
            *table_lines(res), ""]


def _write_section() -> None:
    """Until ``benchmarks/health.py`` renders this section itself: add it to the marketplace-health
    section of the BENCHMARKS.md just rendered (the last section of the file)."""
    md = ROOT / "BENCHMARKS.md"
    text = md.read_text()
    if f"### {TITLE}" in text:
        return
    lines = reviews_lines()
    if "## Marketplace health" not in text:
        lines = ["", "## Marketplace health (issue 12)", "", *lines]
    md.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


def main() -> None:
    from online import machine

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seeds", default="1,2,3", help="seed 1 tunes, 2 and 3 are reported")
    ap.add_argument("--campaigns", type=int, default=60)
    add_write_options(ap)
    args = ap.parse_args()
    if not args.write_only:
        with CoreShare() as share:
            res = run(args.data, tuple(int(s) for s in args.seeds.split(",")), args.campaigns)
        res.update(date=str(date.today()), other_cores=share.other_cores, machine=machine())
        print("\n".join(table_lines(res)))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "health-reviews.json").write_text(json.dumps(res, indent=1, default=float))
    if finish(args) is not None:
        _write_section()


if __name__ == "__main__":
    main()
