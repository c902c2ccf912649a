"""Training filters: which events the strategies learn from. Each returns bool masks by reason; the
base class turns them into the kept data and a report (events in, kept, dropped by reason).

* ``time_window``: only the last ``max_age_days`` before the newest event (old tastes fade; a
  shop's catalogue turns over).
* ``behaviours``: keep (or drop) named behaviours, e.g. leave ``search`` or ``remove_from_cart`` out.
* ``event_rate``: sessions (or, without sessions, users) whose events come faster than a person
  browses, or too many in one visit: scrapers, crawlers and scripted traffic that would otherwise
  teach co-visitation and popularity what no shopper did.

Events whose timestamp is unknown (-1) are never dropped for their time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from ..data import Behaviour
from .stages import StageConfig, TrainingFilter

DAY = 86400.0


class TimeWindowConfig(StageConfig):
    max_age_days: float = Field(gt=0, description="Keep events at most this many days before the newest event.")


class TimeWindowFilter(TrainingFilter):
    name = "time_window"
    Config = TimeWindowConfig

    def _drop(self, data) -> dict[str, np.ndarray]:
        ts = data.events["timestamp"].to_numpy()
        known = ts >= 0
        if not known.any():
            return {}
        cut = ts[known].max() - self.config.max_age_days * DAY
        return {f"older than {self.config.max_age_days:g} days": known & (ts < cut)}


class BehaviourConfig(StageConfig):
    keep: list[str] | None = Field(default=None, description="Only these behaviours (names or aliases).")
    drop: list[str] | None = Field(default=None, description="Every behaviour but these.")

    @field_validator("keep", "drop")
    @classmethod
    def _known(cls, v):
        if v is not None:
            for name in v:
                Behaviour.parse(name)   # ValueError names the behaviours there are
        return v

    @model_validator(mode="after")
    def _one(self) -> "BehaviourConfig":
        if (self.keep is None) == (self.drop is None):
            raise ValueError("give exactly one of `keep` or `drop`")
        return self


class BehaviourFilter(TrainingFilter):
    name = "behaviours"
    Config = BehaviourConfig

    def _drop(self, data) -> dict[str, np.ndarray]:
        beh = data.events["behaviour"].to_numpy()
        if self.config.keep is not None:
            keep = [int(Behaviour.parse(b)) for b in self.config.keep]
            out = ~np.isin(beh, keep)
            return {f"behaviour not in {sorted(self.config.keep)}": out}
        out = {}
        for b in self.config.drop:
            code = int(Behaviour.parse(b))
            out[f"behaviour {Behaviour(code).name.lower()}"] = beh == code
        return out


class EventRateConfig(StageConfig):
    max_events_per_minute: float = Field(default=30.0, gt=0, description="A visit faster than this is not a person.")
    min_events: int = Field(default=20, ge=2, description="Only visits with at least this many events are judged "
                                                          "by their rate (a quick double click is not a bot).")
    max_events_per_session: int | None = Field(default=None, ge=1, description="And none may have more events than this.")
    behaviours: list[str] = Field(
        default_factory=lambda: ["view", "click"],
        description="The browsing behaviours whose pace is judged (an invoice's purchases share one timestamp).")

    @field_validator("behaviours")
    @classmethod
    def _known(cls, v):
        for name in v:
            Behaviour.parse(name)
        return v


class EventRateFilter(TrainingFilter):
    name = "event_rate"
    Config = EventRateConfig

    def _drop(self, data) -> dict[str, np.ndarray]:
        ev = data.events
        sess = ev["session_idx"].to_numpy().astype(np.int64)
        user = ev["user_idx"].to_numpy().astype(np.int64)
        # a visit: the session where known, else the user (offset past every session index)
        visit = np.where(sess >= 0, sess, int(sess.max(initial=-1)) + 1 + user)
        ts = ev["timestamp"].to_numpy().astype(np.float64)
        c = self.config
        browsing = np.isin(ev["behaviour"].to_numpy(), [int(Behaviour.parse(b)) for b in c.behaviours])
        frame = pd.DataFrame({"visit": visit[browsing], "ts": np.where(ts >= 0, ts, np.nan)[browsing]})
        g = frame.groupby("visit")["ts"]
        n = g.size()
        span_min = (g.max() - g.min()) / 60.0
        rate = n / np.maximum(span_min.fillna(np.inf), 1.0)   # unknown times: no rate
        fast = n.index[(n >= c.min_events) & (rate > c.max_events_per_minute)].to_numpy()
        out = {f"visits faster than {c.max_events_per_minute:g} browsing events/minute": np.isin(visit, fast)}
        if c.max_events_per_session is not None:
            inv = np.unique(visit, return_inverse=True)[1]
            per_event = np.bincount(inv)[inv]
            out[f"visits over {c.max_events_per_session} events"] = per_event > c.max_events_per_session
        return out
