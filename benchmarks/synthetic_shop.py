"""A synthetic shop of any size, for the serving benchmarks (no public dataset here has 100k+ items).

Items belong to topics (about 50 items each) and have a Zipf popularity; a visitor has two favourite
topics, and a session (geometric length, mean 5) draws 70 % of its items from one of them and the
rest from the whole catalogue, by popularity; 10 % of events are carts and 3 % purchases, spread
over 90 days. Each visitor has a country (20, Zipf-distributed, the country tilting the favourite
topics towards a block of its own) and each session a device (web 60 %, app 30 %, tablet 10 %), so the
first-visit context has something to learn. Titles are words of the item's topic plus descriptive words, so content strategies
have something to match. Deterministic for a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shoprec.data.readers import frame_to_shopdata
from shoprec.data.schema import Behaviour

WORDS = ("red blue green white black silver gold pink vintage retro classic modern wooden glass metal "
         "ceramic paper cotton wool leather small large mini giant deluxe set pack christmas summer garden "
         "kitchen party travel office kids baby home heart star flower bird owl cat dog tree light candle "
         "mug bowl plate bag box tin card lamp clock frame jar bottle cushion blanket towel basket ribbon").split()


def synthetic_shop(n_items: int, *, events_per_item: float = 10.0, seed: int = 0, days: float = 90.0):
    rng = np.random.default_rng(seed)
    n_topics = max(1, n_items // 50)
    topic = rng.integers(0, n_topics, n_items)
    pop = 1.0 / np.power(rng.permutation(n_items) + 1.0, 1.1)
    n_events = int(n_items * events_per_item)
    mean_len = 5.0
    n_sessions = max(1, int(n_events / mean_len))
    n_users = max(1, n_sessions // 2)
    user_topics = rng.integers(0, n_topics, (n_users, 2))
    countries = np.array([f"C{c:02d}" for c in range(20)], dtype=object)
    c_p = 1.0 / np.arange(1, 21)
    user_country = rng.choice(20, n_users, p=c_p / c_p.sum())
    # a visitor's first favourite topic comes from the country's own block of topics, half of the time
    block = max(1, n_topics // 20)
    local = rng.random(n_users) < 0.5
    user_topics[local, 0] = (user_country[local] * block + rng.integers(0, block, int(local.sum()))) % n_topics
    lengths = np.minimum(rng.geometric(1 / mean_len, n_sessions), 50)
    sess = np.repeat(np.arange(n_sessions), lengths)
    session_user = rng.integers(0, n_users, n_sessions)
    user = session_user[sess]
    session_device = rng.choice(np.array(["web", "app", "tablet"], dtype=object), n_sessions, p=[0.6, 0.3, 0.1])
    n = len(sess)
    # items: within-topic draws by popularity, else global by popularity
    order = np.argsort(topic, kind="stable")
    starts = np.searchsorted(topic[order], np.arange(n_topics))
    ends = np.searchsorted(topic[order], np.arange(n_topics), side="right")
    cdf_global = np.cumsum(pop) / pop.sum()
    pop_sorted = pop[order]
    cum = np.cumsum(pop_sorted)
    base = np.concatenate([[0.0], cum])
    t = user_topics[user, rng.integers(0, 2, n)]
    in_topic = (rng.random(n) < 0.7) & (ends[t] > starts[t])
    lo, hi = base[starts[t]], base[ends[t]]
    u = lo + rng.random(n) * (hi - lo)
    pick_topic = order[np.clip(np.searchsorted(cum, u, side="right"), starts[t], np.maximum(ends[t] - 1, starts[t]))]
    pick_global = np.searchsorted(cdf_global, rng.random(n) * cdf_global[-1])
    item = np.where(in_topic, pick_topic, np.minimum(pick_global, n_items - 1))
    r = rng.random(n)
    behaviour = np.where(r < 0.03, int(Behaviour.PURCHASE), np.where(r < 0.13, int(Behaviour.ADD_TO_CART),
                                                                        int(Behaviour.VIEW))).astype(np.int8)
    t0 = 1_700_000_000
    session_start = t0 + rng.random(n_sessions) * days * 86400
    pos = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    ts = (session_start[sess] + pos * 40).astype(np.int64)
    frame = pd.DataFrame({"user_id": pd.Series(user).map("u{}".format), "item_id": pd.Series(item).map("i{}".format),
                          "behaviour": behaviour, "timestamp": ts, "session_id": pd.Series(sess).map("s{}".format),
                          "quantity": np.ones(n, np.float32), "price": np.full(n, np.nan, np.float32),
                          "rating": np.full(n, np.nan, np.float32),
                          "country": countries[user_country[user]], "device": session_device[sess]})
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    words = np.array(WORDS, dtype=object)
    tw = rng.integers(0, len(words), (n_topics, 2))
    iw = rng.integers(0, len(words), (n_items, 2))
    titles = [f"{words[tw[tp, 0]]} {words[tw[tp, 1]]} {words[a]} {words[b]} {i:06d}"
              for i, (tp, a, b) in enumerate(zip(topic, iw[:, 0], iw[:, 1]))]
    table = pd.DataFrame({"title": titles, "price": np.round(rng.lognormal(1.5, 0.8, n_items), 2),
                          "category": pd.Series(topic).map("topic{:03d}".format).to_numpy(), "in_stock": True},
                         index=pd.Index([f"i{i}" for i in range(n_items)], name="item_id"))
    return frame_to_shopdata(frame, name=f"synthetic-{n_items}", item_table=table)
