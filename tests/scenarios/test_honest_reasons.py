"""Honest reasons: a visitor never seen before is not told an item was "picked for your taste", and
the item page of an item added after the fit shows items like it (by content), not arbitrary ones."""

import numpy as np
import pandas as pd

from shoprec.data import Behaviour, ShopData
from shoprec.scenarios import Recommender, RequestContext, scenario_from_dict

FAMILIES = {
    "candle": ["white candle holder", "red candle holder", "scented candle tin", "tealight candle pack",
               "pillar candle large", "candle snuffer brass"],
    "mug": ["coffee mug blue", "tea mug striped", "espresso cup set", "travel mug steel", "mug tree wooden",
            "latte glass mug"],
    "garden": ["garden gnome", "watering can", "plant pot terracotta", "bird feeder", "garden gloves",
               "seed tray"],
}


def family_shop(seed: int = 0) -> ShopData:
    """36 shoppers, each browsing and buying within one family of items (views, carts, purchases)."""
    rng = np.random.default_rng(seed)
    ids = {f"{fam}{j}": title for fam, titles in FAMILIES.items() for j, title in enumerate(titles)}
    rows, t = [], 1_700_000_000
    for u in range(36):
        fam = list(FAMILIES)[u % 3]
        pool = [i for i in ids if i.startswith(fam)]
        for j in range(8):
            t += int(rng.integers(60, 600))
            beh = rng.choice([Behaviour.VIEW, Behaviour.ADD_TO_CART, Behaviour.PURCHASE], p=[0.6, 0.2, 0.2])
            rows.append((f"u{u}", str(rng.choice(pool)), int(beh), t, f"s{u}-{j // 4}"))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"])
    table = pd.DataFrame({"title": list(ids.values()), "category": [i.rstrip("0123456789") for i in ids]},
                         index=list(ids))
    return ShopData.from_frame(frame, name="families", item_table=table)


HISTORY_REASONS = ("picked for your taste", "popular with shoppers like you", "because you showed interest",
                   "shoppers who chose", "seen in sessions like yours", "often chosen next")


def test_a_visitor_never_seen_gets_no_taste_reasons_and_no_arbitrary_items():
    data = family_shop()
    home = scenario_from_dict({
        "scenario": {"name": "home", "k": 6},
        "strategies": [{"name": "ease"}, {"name": "item_knn"}, {"name": "linear_filter"}, {"name": "als",
                       "params": {"factors": 4, "iterations": 3}},
                       {"name": "popularity", "label": "trending", "weight": 0.3, "params": {"mode": "trending"}}],
        "fallback": [{"name": "popularity"}]})
    rec = Recommender([home]).fit(data)
    for ctx in ({"user_id": "never-seen"}, {}, {"country": "Nowhere", "device": "mobile"}):
        resp = rec.recommend("home", ctx)
        assert len(resp.items) == 6
        for it in resp.items:
            assert not any(it.reason.startswith(r) for r in HISTORY_REASONS), (ctx, it.item_id, it.reason)
            assert {r.strategy for r in it.reasons} <= {"trending", "fallback:popularity"}, it.reasons
    # the list trending alone gives, not items in catalogue order from models with nothing to go on
    got = [it.item_id for it in rec.recommend("home", {"user_id": "never-seen"}).items]
    q, _, _ = rec.to_queries([RequestContext.parse({"user_id": "never-seen"})])
    alone = rec.pipelines["home"].recommend(q, method="trending").item_idx[0]
    assert got == list(data.items.to_external(alone)) != list(data.items.to_external(np.arange(6)))
    # a known user still gets the history reasons
    known = rec.recommend("home", {"user_id": "u0"})
    assert any(any(it.reason.startswith(r) for r in HISTORY_REASONS) for it in known.items)


def test_the_item_page_of_a_brand_new_item_shows_items_like_it():
    data = family_shop()
    page = scenario_from_dict({
        "scenario": {"name": "item_page", "k": 4},
        "strategies": [{"name": "session_knn"}, {"name": "sequential"},
                       {"name": "item_knn", "label": "covisit", "weight": 0.5, "params": {"similarity": "covisit"}},
                       {"name": "content_tfidf", "weight": 0.3}],
        "fallback": [{"name": "popularity", "params": {"mode": "trending"}}]})
    rec = Recommender([page]).fit(data)
    rec.upsert_items(pd.DataFrame({"item_id": ["candle-new"], "title": ["scented candle holder gift"],
                                   "category": ["candle"]}))
    resp = rec.recommend("item_page", {"current_item": "candle-new", "session": ["candle-new"]})
    got = [it.item_id for it in resp.items]
    assert len(got) == 4 and all(i.startswith("candle") for i in got), got
    for it in resp.items:
        assert it.reasons[0].strategy == "content_tfidf" and it.reason.startswith("similar to"), it.reason

