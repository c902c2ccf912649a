"""Rewards: the answers the service showed, joined to what shoppers did next.

:func:`join_rewards` takes the logged impressions (one per answer: request id, time, scenario, the
shown items with their positions and propensities, the mix policy's arm and propensity) and the
events, and attributes each rewarded event (click, cart, purchase … as the scenario's ``[reward]``
weighs them) to one shown item:

1. by ``request_id`` + ``position`` when the event carries them (the item must be the one shown
   there; an event naming the request but not the position is matched on request and item);
2. else, when ``attribution`` allows, by session and item, then by user and item: the latest answer
   that showed the item before the event;

always within ``window_seconds`` after the answer (a clock ``slack`` of 60 s before it is tolerated:
events carry client timestamps). Per shown item the best behaviour counts (a purchase after its
click earns the purchase weight, not both), plus ``revenue`` × price × quantity of its purchases; an
answer's reward is the sum over its items. Everything that could not be attributed is counted by
reason in :attr:`RewardJoin.report`: events for requests never logged, for items not shown, too late,
with no matching answer; and answers logged without the policy's propensity (unusable for OPE).

Inputs are records or dicts with the fields of the service's ``ImpressionRecord`` / ``EventRecord``
(from a live store: :func:`from_store`; from files: :func:`read_impressions` and any event table).
The result's :meth:`RewardJoin.feedback_frame` is the table ``shoprec ope --logs`` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from ..scenarios.config import RewardConfig

__all__ = ["RewardJoin", "from_store", "join_rewards", "read_impressions"]

SLACK_SECONDS = 60.0
CONTEXT_FIELDS = ("country", "device", "session_length", "k")


def _rows(records: Iterable[Any]) -> list[dict[str, Any]]:
    return [{f.name: getattr(r, f.name) for f in fields(r)} if is_dataclass(r) else r for r in records]


@dataclass
class RewardJoin:
    """``requests``: one row per answer (request_id, scenario, created_at, user_id, session_id, policy,
    arm, propensity, reward, revenue, events, final, and the context fields); ``shown``: one row per
    shown item (request_id, position, item_id, propensity, reward, behaviour); ``report``: counts;
    ``hits``: one row per attributed event (request_id, position, behaviour, timestamp, revenue), for
    measures taken as of a time (an A/B test's daily looks)."""

    requests: pd.DataFrame
    shown: pd.DataFrame
    report: dict[str, int] = field(default_factory=dict)
    hits: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["request_id", "position", "behaviour", "timestamp", "revenue"]))

    def feedback_frame(self, final_only: bool = True) -> pd.DataFrame:
        """The answers with a logged policy propensity, as ``shoprec ope`` and the policies read them
        (columns arm, reward, propensity, request_id, and the context); answers the service logged as
        given to a recognised bot (``context.bot``) are left out."""
        r = self.requests
        keep = r["propensity"].notna() & r["bot"].isna()      # answers to recognised bots teach nothing
        if final_only:
            keep &= r["final"]
        return r[keep].reset_index(drop=True)

    def summary(self) -> str:
        rep = self.report
        parts = [f"{rep.get('answers', 0):,} answers, {rep.get('answers_rewarded', 0):,} with a reward; "
                 f"{rep.get('events', 0):,} events, {rep.get('attributed', 0):,} attributed "
                 f"({rep.get('by_request', 0):,} by request, {rep.get('by_session', 0):,} by session, "
                 f"{rep.get('by_user', 0):,} by user)"]
        reasons = {"unknown_request": "for requests never logged", "not_shown": "for items the answer did not show",
                   "outside_window": "outside the reward window", "no_answer": "with no answer that showed the item",
                   "not_rewarded": "of behaviours the reward does not weigh"}
        skipped = [f"{rep[k]:,} {v}" for k, v in reasons.items() if rep.get(k)]
        if skipped:
            parts.append("not attributed: " + ", ".join(skipped))
        if rep.get("answers_without_propensity"):
            parts.append(f"{rep['answers_without_propensity']:,} answers were logged without the policy's "
                         "propensity and cannot be reweighted (left out of the feedback)")
        if rep.get("answers_pending"):
            parts.append(f"{rep['answers_pending']:,} answers are younger than the reward window (not final)")
        return "; ".join(parts)


def _impression_frames(impressions: Iterable[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = _rows(impressions)
    req, shown = [], []
    for r in rows:
        ctx = r.get("context") or {}
        pol = ctx.get("policy") or {}
        rec = {"request_id": r["request_id"], "scenario": r.get("scenario"), "created_at": float(r["created_at"]),
               "user_id": r.get("user_id"), "session_id": r.get("session_id"),
               "policy": pol.get("name"), "arm": pol.get("arm"), "propensity": pol.get("propensity"),
               # the context features a linear policy chose with, as JSON text (survives CSV and Parquet)
               "features": None if pol.get("features") is None else json.dumps([float(v) for v in pol["features"]]),
               "bot": ctx.get("bot") or None}
        for f in CONTEXT_FIELDS:
            rec[f] = ctx.get(f)
        rec["basket_size"] = len(ctx.get("basket") or [])
        req.append(rec)
        for it in r.get("items") or []:
            shown.append((r["request_id"], int(it["position"]), str(it["item_id"]), it.get("propensity")))
    requests = pd.DataFrame(req, columns=["request_id", "scenario", "created_at", "user_id", "session_id", "policy",
                                          "arm", "propensity", "features", "bot", *CONTEXT_FIELDS, "basket_size"])
    requests = requests.drop_duplicates("request_id", keep="first").reset_index(drop=True)
    shown_df = pd.DataFrame(shown, columns=["request_id", "position", "item_id", "propensity"])
    shown_df = shown_df.drop_duplicates(["request_id", "position"]).reset_index(drop=True)
    return requests, shown_df


def _event_frame(events: Iterable[Any] | pd.DataFrame) -> pd.DataFrame:
    e = events if isinstance(events, pd.DataFrame) else pd.DataFrame(_rows(events))
    if e.empty and not len(e.columns):
        e = pd.DataFrame(columns=["item_id", "behaviour", "timestamp"])
    for c in ("request_id", "position", "session_id", "user_id", "price", "quantity"):
        if c not in e.columns:
            e[c] = None
    missing = [c for c in ("item_id", "behaviour", "timestamp") if c not in e.columns]
    if missing:
        raise ValueError(f"events: no column {missing[0]!r}; they have {list(e.columns)}")
    return e


def join_rewards(impressions: Iterable[Any], events: Iterable[Any] | pd.DataFrame, config: RewardConfig | None = None,
                 *, scenario: str | None = None, now: float | None = None) -> RewardJoin:
    """Attribute ``events`` to the answers in ``impressions`` (module docstring). ``scenario`` keeps
    only that scenario's answers; ``now`` (seconds) marks answers younger than the window as not final."""
    cfg = config or RewardConfig()
    requests, shown = _impression_frames(impressions)
    if scenario is not None:
        requests = requests[requests["scenario"] == scenario].reset_index(drop=True)
        shown = shown[shown["request_id"].isin(requests["request_id"])].reset_index(drop=True)
    ev = _event_frame(events)
    report: dict[str, int] = {"answers": len(requests), "events": len(ev)}
    weights = cfg.behaviour_weights()
    ev = ev.assign(_w=ev["behaviour"].astype(str).map(weights))
    report["not_rewarded"] = int(ev["_w"].isna().sum())
    ev = ev[ev["_w"].notna()].copy()
    ev["timestamp"] = pd.to_numeric(ev["timestamp"], errors="coerce").astype(np.float64)
    ev["item_id"] = ev["item_id"].astype(str)
    # revenue of the purchases (reported whether or not the reward weighs it)
    price = pd.to_numeric(ev["price"], errors="coerce").fillna(0.0)
    qty = pd.to_numeric(ev["quantity"], errors="coerce").fillna(1.0)
    ev["_rev"] = np.where(ev["behaviour"].astype(str) == "purchase", price * qty, 0.0).astype(np.float64)
    ev["_row"] = np.arange(len(ev))

    stamped = shown.merge(requests[["request_id", "created_at", "user_id", "session_id"]], on="request_id")
    hits = []              # (event row, request_id, position)

    # 1. by request id (+ position, else + item)
    has_req = ev["request_id"].notna()
    direct = ev[has_req]
    known = direct["request_id"].isin(requests["request_id"])
    report["unknown_request"] = int((~known).sum())
    direct = direct[known]
    if len(direct):
        d = direct.assign(position=pd.to_numeric(direct["position"], errors="coerce"))
        by_pos = d[d["position"].notna()].astype({"position": np.int64}).merge(
            stamped, on=["request_id", "position"], how="left", suffixes=("", "_shown"))
        ok = by_pos["item_id"] == by_pos["item_id_shown"]
        no_pos = d[d["position"].isna()].merge(stamped, on=["request_id", "item_id"], how="left",
                                                suffixes=("_event", ""))
        no_pos = no_pos.drop(columns=["position_event"], errors="ignore")
        matched = pd.concat([by_pos[ok][["_row", "request_id", "position", "created_at", "timestamp"]],
                             no_pos[no_pos["position"].notna()][["_row", "request_id", "position", "created_at",
                                                                 "timestamp"]]])
        report["not_shown"] = int((~ok).sum() + no_pos["position"].isna().sum())
        in_window = _in_window(matched, cfg)
        report["outside_window"] = int((~in_window).sum())
        matched = matched[in_window]
        report["by_request"] = len(matched)
        hits.append(matched[["_row", "request_id", "position"]])

    # 2. by session + item, then user + item: the latest answer that showed it before the event
    rest = ev[~has_req]
    levels = {"request": [], "session": ["session_id"], "user": ["session_id", "user_id"]}[cfg.attribution]
    for key in levels:
        name = "by_" + key.split("_")[0]
        report[name] = 0
        cand = rest[rest[key].notna()]
        if not len(cand) or not len(stamped):
            continue
        left = cand[["_row", key, "item_id", "timestamp"]].astype({key: str}).sort_values("timestamp")
        right = stamped[stamped[key].notna()].astype({key: str})[[key, "item_id", "created_at", "request_id",
                                                                  "position"]]
        right = right.sort_values("created_at")
        left = left[left["timestamp"].notna()]
        m = pd.merge_asof(left, right, left_on="timestamp", right_on="created_at", by=[key, "item_id"],
                          direction="backward", tolerance=cfg.window_seconds)
        m = m[m["request_id"].notna()]
        report[name] = len(m)
        hits.append(m[["_row", "request_id", "position"]])
        rest = rest[~rest["_row"].isin(m["_row"])]
    report["no_answer"] = len(rest)

    hit = pd.concat(hits) if hits else pd.DataFrame(columns=["_row", "request_id", "position"])
    hit = hit.merge(ev[["_row", "_w", "_rev", "behaviour", "timestamp"]], on="_row")
    report["attributed"] = len(hit)
    shown["reward"] = 0.0
    shown["behaviour"] = None
    if len(hit):
        hit["position"] = hit["position"].astype(np.int64)
        best = hit.sort_values("_w").groupby(["request_id", "position"]).agg(
            w=("_w", "max"), rev=("_rev", "sum"), behaviour=("behaviour", "last"))
        idx = pd.MultiIndex.from_frame(shown[["request_id", "position"]])
        got = best.reindex(idx)
        shown["reward"] = (got["w"].fillna(0.0) + cfg.revenue * got["rev"].fillna(0.0)).to_numpy()
        shown["behaviour"] = got["behaviour"].to_numpy()
        per_req = hit.groupby("request_id").agg(events=("_row", "size"), revenue=("_rev", "sum"))
    else:
        per_req = pd.DataFrame(columns=["events", "revenue"])
    reward = shown.groupby("request_id")["reward"].sum()
    requests["reward"] = requests["request_id"].map(reward).fillna(0.0).astype(np.float64)
    requests["revenue"] = requests["request_id"].map(per_req["revenue"]).fillna(0.0).astype(np.float64)
    requests["events"] = requests["request_id"].map(per_req["events"]).fillna(0).astype(np.int64)
    requests["final"] = True if now is None else (requests["created_at"] + cfg.window_seconds <= now)
    requests["propensity"] = pd.to_numeric(requests["propensity"], errors="coerce")
    report["answers_rewarded"] = int((requests["reward"] > 0).sum())
    report["answers_without_propensity"] = int(requests["propensity"].isna().sum())
    report["answers_pending"] = int((~requests["final"]).sum())
    hits = hit[["request_id", "position", "behaviour", "timestamp", "_rev"]].rename(columns={"_rev": "revenue"})
    return RewardJoin(requests, shown, report, hits.reset_index(drop=True))


def _in_window(m: pd.DataFrame, cfg: RewardConfig) -> np.ndarray:
    dt = m["timestamp"].to_numpy(np.float64) - m["created_at"].to_numpy(np.float64)
    return (dt >= -SLACK_SECONDS) & (dt <= cfg.window_seconds)


def from_store(store: Any, config: RewardConfig | None = None, *, scenario: str | None = None,
               now: float | None = None) -> RewardJoin:
    """:func:`join_rewards` over everything a live event store holds (any object with
    ``iter_impressions()`` and ``iter_events()``, e.g. ``shoprec.service.store.open_store(url)``)."""
    impressions = [r for batch in store.iter_impressions() for r in batch]
    events = [r for batch in store.iter_events() for r in batch]
    return join_rewards(impressions, events, config, scenario=scenario, now=now)


def read_impressions(path: str | Path) -> list[dict[str, Any]]:
    """Impressions from a JSON Lines file (one ``ImpressionRecord`` as a JSON object per line); a
    line that is not one is an error naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    out = []
    with p.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}, line {line_no}: not JSON ({e.msg})") from None
            missing = [k for k in ("request_id", "created_at", "items") if k not in rec]
            if not isinstance(rec, dict) or missing:
                raise ValueError(f"{p}, line {line_no}: an impression needs request_id, created_at and items "
                                 f"(missing {missing})")
            out.append(rec)
    return out
