"""Bot visits on small synthetic logs with known answers, and the bots training filter: a crawler's
events never reach co-visitation."""

import numpy as np
import pandas as pd

from shoprec.data import Behaviour, ShopData
from shoprec.health.bots import BotDetector, session_features
from shoprec.scenarios.config import scenario_from_dict
from shoprec.scenarios.engine import Recommender

V, C, P = int(Behaviour.VIEW), int(Behaviour.ADD_TO_CART), int(Behaviour.PURCHASE)


def _visit(name, items, behaviours, gaps, t0=1_600_000_000.0):
    ts = t0 + np.concatenate([[0.0], np.cumsum(gaps)])
    return pd.DataFrame({"visit": name, "item": items, "behaviour": behaviours, "timestamp": ts})


def _log():
    rng = np.random.default_rng(0)
    people = [_visit(f"p{k}", rng.integers(0, 30, 12), rng.choice([V, V, V, C, P], 12), rng.exponential(40, 11))
              for k in range(20)]
    crawler = _visit("crawl", np.arange(100, 160), [V] * 60, np.full(59, 1.0))           # 60 items, 1 a second
    slow_crawler = _visit("slow", np.arange(200, 240), [V] * 40, 30 + rng.normal(0, 1, 39))   # metronome, 30 s
    stuffer = _visit("stuff", np.arange(300, 315), [C] * 15, rng.exponential(20, 14))
    # a keen person: many views, fast, but irregular, and buys at the end
    keen = _visit("keen", list(rng.integers(0, 30, 29)) + [3], [V] * 29 + [P], rng.exponential(4, 29))
    return pd.concat(people + [crawler, slow_crawler, stuffer, keen], ignore_index=True)


def test_features_and_kinds_have_known_answers():
    feats = session_features(_log())
    assert feats.loc["crawl", "events"] == 60 and feats.loc["crawl", "rate_per_minute"] == 60 * 60 / 59
    assert feats.loc["crawl", "gap_cv"] == 0 and feats.loc["stuff", "carts"] == 15
    kinds = BotDetector().kinds(feats)
    assert kinds[kinds != ""].to_dict() == {"crawl": "crawler", "slow": "crawler", "stuff": "cart_stuffer"}


def test_flags_say_why():
    f = BotDetector().flags(_log())
    by = f.frame.set_index("key")
    assert set(by.index) == {"crawl", "slow", "stuff"} and (by["subject"] == "session").all()
    assert "60 views of 60 items at 61 a minute, gaps regular" in by.loc["crawl", "reason"]
    assert by.loc["stuff", "reason"] == "15 add-to-carts and no purchase"
    assert f.checked == {"visits": 24, "events": len(_log())}


def _shop(with_crawler):
    rows = []
    rng = np.random.default_rng(1)
    t = 1_600_000_000
    for s in range(60):                                   # people: items 0–9 in pairs (2k, 2k + 1)
        a = 2 * int(rng.integers(0, 5))
        for it in (a, a + 1, a):
            t += int(rng.integers(30, 300))
            rows.append((f"u{s}", f"i{it}", V, t, f"s{s}"))
    if with_crawler:            # 20 crawls, each through i0, i9 and 30 other pages, a page a second
        for c in range(20):
            for k, it in enumerate(["i0", "i9"] + [f"x{c}-{j}" for j in range(30)]):
                rows.append((f"bot{c}", it, V, t + 100 * c + k, f"crawl{c}"))
    return ShopData.from_frame(pd.DataFrame(rows, columns=["user_id", "item_id", "behaviour", "timestamp", "session_id"]))


def test_the_bots_filter_keeps_a_crawler_out_of_co_visitation():
    def similarity(data, filters):
        cfg = scenario_from_dict({"scenario": {"name": "item_page", "k": 3}, "strategies": [{"name": "item_knn"}],
                                  "training_filters": filters, "rules": {"exclude_history": "none"}}, "t")
        rec = Recommender([cfg]).fit(data)
        sim = rec.pipelines["item_page"].models_[0].similarity_.tocsr()
        i0, i1, i9 = rec.data_.items.to_index(["i0", "i1", "i9"])
        return sim[i0, i1], sim[i0, i9], rec.pipelines["item_page"].filter_reports_

    clean = similarity(_shop(False), [])
    attacked = similarity(_shop(True), [])
    defended = similarity(_shop(True), [{"name": "bots"}])
    assert clean[1] == 0 and attacked[1] > 0          # the crawler made i9 a neighbour of i0 …
    assert defended[1] == 0 and defended[0] == clean[0]   # … the filter undoes it exactly
    report = defended[2][0]
    assert report.stage == "bots" and report.dropped == {"events of crawler visits": 640, "events of cart-stuffer visits": 0, "events of click-farm visits": 0,
                                                 "events of brushing visits": 0}


def test_click_farm_visits_are_found_together_and_people_are_not():
    rng = np.random.default_rng(5)
    targets = np.arange(1000, 1008)
    farm = [_visit(f"f{k}", rng.choice(targets, 4, replace=False), [V] * 4, rng.exponential(20, 3))
            for k in range(30)]
    people = [_visit(f"p{k}", rng.choice(500, 5, replace=False), [V] * 5, rng.exponential(40, 4)) for k in range(300)]
    log = pd.concat(farm + people, ignore_index=True)
    kinds = BotDetector().kinds(session_features(log), log)
    flagged = set(kinds[kinds != ""].index)
    assert flagged == {f"f{k}" for k in range(30)}
    assert "same 4 items" in BotDetector().flags(log).frame.set_index("key").loc["f0", "reason"]


def test_brushing_orders_from_one_off_accounts_are_found_and_returning_buyers_are_not():
    rng = np.random.default_rng(7)
    targets = np.arange(1000, 1006)
    # 40 customers who come back: three orders each of the shop's usual items
    regular = [_visit(f"r{k}-{j}", rng.choice(50, 6, replace=False), [P] * 6, rng.exponential(30, 5),
                      t0=1_600_000_000.0 + j * 86_400).assign(account=f"r{k}")
               for k in range(40) for j in range(3)]
    # 40 one-off accounts, each buying 4 of the 6 targets (about 27 orders each) and one usual item
    ring = [_visit(f"b{k}", np.r_[rng.choice(targets, 4, replace=False), rng.integers(50)], [P] * 5,
                   rng.exponential(20, 4)).assign(account=f"b{k}") for k in range(40)]
    # 20 genuine newcomers buying the usual items once: not brushing
    newcomers = [_visit(f"n{k}", rng.choice(50, 5, replace=False), [P] * 5, rng.exponential(30, 4)).assign(account=f"n{k}")
                 for k in range(20)]
    log = pd.concat(regular + ring + newcomers, ignore_index=True)
    det = BotDetector()
    kinds = det.kinds(session_features(log), log)
    assert set(kinds[kinds != ""].index) == {f"b{k}" for k in range(40)}
    assert set(kinds[kinds != ""]) == {"brushing"}
    assert "one-off account" in det.flags(log).frame.set_index("key").loc["b0", "reason"]
    # the same orders from accounts that come back are customers, not a ring
    back = pd.concat([log, log[log["visit"].str.startswith("b")].assign(
        visit=lambda f: f["visit"] + "-again", timestamp=lambda f: f["timestamp"] + 86_400)], ignore_index=True)
    assert (det.kinds(session_features(back), back) == "").all()
    # without accounts the rule cannot judge, and says nothing
    bare = log.drop(columns="account")
    assert (det.kinds(session_features(bare), bare) == "").all()


def test_the_bots_filter_drops_brushing_orders_of_one_off_users():
    rng = np.random.default_rng(8)
    rows = []
    for k in range(40):                 # returning customers: two sessions each
        for j in range(2):
            for it in rng.choice(30, 5, replace=False):
                rows.append((f"u{k}", f"s{k}-{j}", f"i{it}", P, 1_600_000_000 + j * 86_400))
    for k in range(25):                 # the ring: one session per account, the targets
        for it in [f"t{x}" for x in rng.choice(5, 4, replace=False)]:
            rows.append((f"ring{k}", f"ring{k}", it, P, 1_600_100_000 + k))
    df = pd.DataFrame(rows, columns=["user_id", "session_id", "item_id", "behaviour", "timestamp"])
    data = ShopData.from_frame(df)
    cfg = scenario_from_dict({"scenario": {"name": "t"}, "strategies": [{"name": "popularity"}],
                              "training_filters": [{"name": "bots"}]})
    rec = Recommender([cfg]).fit(data)
    report = rec.pipelines["t"].filter_reports_[0]
    assert report.dropped["events of brushing visits"] == 100
