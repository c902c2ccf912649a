"""The HTTP API (FastAPI). ``create_app(settings)`` builds it; the lifespan loads the model artifact,
opens the event store and the state bus, rebuilds the online state, and starts the engine.

Routes (OpenAPI docs at ``/docs``):

* ``POST /v1/recommendations/{scenario}`` — items with score, position, reason (read)
* ``POST /v1/events`` — a batch of events, durable before the 2xx, applied before the answer (write;
  the public key may post events)
* ``PUT /v1/items`` — catalogue upserts (write); ``GET /v1/items/{item_id}`` (read)
* ``GET /v1/policies/{scenario}`` — a learning mix policy's arms: pulls, rewards, posterior means (admin)
* ``GET /v1/admin/model``, ``POST /v1/admin/reload`` — the model served, swap to a newer one (admin);
  ``GET /v1/admin/stats`` — this process's ingestion counts (unknown items, refusals, rate limits)
* ``GET /health``, ``GET /ready``, ``GET /metrics`` (Prometheus)
* ``GET /`` — the demo storefront

Every error, whichever layer raises it (validation, auth, rate limits, unknown routes and methods,
unexpected exceptions), answers ``{"error": {"code", "message", "hint"}}``; a 500 never carries the
exception's text, only the request id under which the server logged it.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import os
import queue
import re
import subprocess
import sys
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import Depends, FastAPI, Header, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..exceptions import ArtifactError, ConfigError, RequestError
from ..scenarios import Recommender
from ..scenarios.artifact import read_manifest
from ..online.abtest import Experiment, ExperimentRouter, experiment_report
from .bus import EventBus, open_bus
from .live import Engine
from .files import write_private
from .metrics import Metrics
from .ratelimit import Refusal, WriteLimits, storage_uri
from .schemas import (HEADER_ID_PATTERN, ID_PATTERN, AdminStats, ErrorBody, EventBatch, EventsAccepted, Health,
                      ItemBatch, ItemOutFull, ItemsAccepted, ModelInfo, PriceFlag, RecommendationRequest, RecommendationResponse,
                      pattern_problem)
from .settings import ServiceSettings
from .store import EventRecord, EventStore, ImpressionRecord, ItemRecord, StoreError, new_id, open_store

log = logging.getLogger(__name__)
STOREFRONT = Path(__file__).parent / "storefront"
ScenarioName = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
ItemIdPath = Annotated[str, PathParam(min_length=1, max_length=256, pattern=ID_PATTERN)]
FileName = Annotated[str, PathParam(pattern=r"^[a-z0-9_\-]+\.(js|css|svg)$")]


try:  # orjson serialises the responses 5-10x faster than the standard library
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)
except ImportError:  # pragma: no cover - orjson is a dependency
    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- model files
def resolve_model(path: Path) -> Path:
    """An artifact folder, or the version named by ``path/CURRENT``."""
    path = Path(path)
    if (path / "manifest.json").is_file():
        return path
    current = path / "CURRENT"
    if current.is_file():
        target = path / current.read_text().strip()
        if (target / "manifest.json").is_file():
            return target
        raise ArtifactError(f"{current} names {target.name!r}, which is not a model folder")
    raise ArtifactError(f"{path}: neither a model (manifest.json) nor a models folder (CURRENT); "
                        "write one with `shoprec train --out {path}`")


def publish_model(models_dir: Path, version_dir: Path) -> None:
    """Make ``version_dir`` (inside ``models_dir``) the current model: CURRENT (0600) is replaced
    atomically."""
    write_private(Path(models_dir) / "CURRENT", version_dir.name + "\n")


# --------------------------------------------------------------------------- impressions
class ImpressionWriter:
    """Impressions go to the store from a background thread in batches (they are logged, not
    acknowledged to anyone, so a response never waits for them); ``close`` flushes.

    ``on_written(rows)`` runs after each batch's write (even a failed one): the answers are shared
    with the other workers only once the store holds them, so a worker starting meanwhile finds
    each answer either in the store it rebuilds from or on the bus it follows from before that."""

    def __init__(self, store: EventStore, metrics: Metrics, max_rows: int = 2000, max_wait: float = 0.25,
                 on_written: Callable[[list[ImpressionRecord]], None] | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.on_written = on_written
        self._q: queue.Queue = queue.Queue()
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="impressions", daemon=True)
        self._thread.start()

    def add(self, rows: list[ImpressionRecord]) -> None:
        self._q.put(rows)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every impression added before this call is written (an erasure must not be
        followed by a queued impression of the erased user)."""
        done = threading.Event()
        self._q.put(done)
        return done.wait(timeout)

    def _run(self) -> None:
        done = False
        while not done:
            rows: list[ImpressionRecord] = []
            flushed: list[threading.Event] = []
            first = self._q.get()
            if first is None:
                break
            if isinstance(first, threading.Event):
                flushed.append(first)
            else:
                rows.extend(first)
            deadline = time.monotonic() + self.max_wait
            while len(rows) < self.max_rows and not flushed:
                try:
                    nxt = self._q.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    done = True
                    break
                if isinstance(nxt, threading.Event):
                    flushed.append(nxt)
                    break
                rows.extend(nxt)
            if rows:
                self._write(rows)
            for ev in flushed:
                ev.set()

    def _write(self, rows: list[ImpressionRecord]) -> None:
        try:
            self.store.append_impressions(rows)
            self.written += len(rows)
            self.metrics.impressions.inc(len(rows))
        except Exception:  # noqa: BLE001 - logged and counted, never fails a response
            self.failed += len(rows)
            self.metrics.errors.labels(kind="impression_log").inc()
            log.exception("could not log %d impressions", len(rows))
        if self.on_written is not None:
            try:
                self.on_written(rows)
            except Exception:  # noqa: BLE001 - the writer must go on
                log.exception("after logging %d impressions", len(rows))

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=30)


# --------------------------------------------------------------------------- the service
class Service:
    """What the routes use: settings, store, bus, engine, metrics (kept in ``app.state.service``)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.limits = WriteLimits(settings.rate_limit_per_ip, settings.rate_limit_public_key,
                                  settings.rate_limit_api_key, storage_uri(settings.rate_limit_storage,
                                                                           settings.state_bus))
        self.started_at = time.time()
        #: this process's ingestion counts since it started (GET /v1/admin/stats; also in /metrics)
        self.counts = {"events_accepted": 0, "events_duplicate": 0, "events_unknown_item": 0,
                       "events_refused_unknown_item": 0, "batches_refused_unknown_item": 0,
                       "rate_limited": 0}
        self.store: EventStore | None = None
        self.bus: EventBus | None = None
        self.engine: Engine | None = None
        self.impressions: ImpressionWriter | None = None
        self.model_path: Path | None = None
        self.manifest: dict[str, Any] = {}
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.router: ExperimentRouter | None = None
        self.exposure: Any = None
        from ..privacy.pseudonym import Pseudonymizer

        self.pz = Pseudonymizer(settings.id_key) if settings.id_key else None
        self.refit: subprocess.Popen | None = None
        key = settings.experiment_key or hmac.new(settings.api_key.encode(), b"shoprec experiments",
                                                  "sha256").hexdigest()
        self._experiment_key = key

    # ------------------------------------------------------------------ experiments
    def experiments(self) -> list[Experiment]:
        """Every experiment the store holds (running and stopped), oldest first."""
        return [Experiment.model_validate(body) for _, body, _ in self.store.iter_documents("experiment")]

    def load_experiments(self) -> None:
        """(Re)read the running experiments: at start, after a change here or on another worker."""
        self.router = ExperimentRouter(self.experiments(), self._experiment_key)

    def save_experiment(self, exp: Experiment) -> None:
        self.store.put_document("experiment", exp.id, exp.model_dump())
        self.load_experiments()
        if self.bus is not None and self.bus.shared:
            self.bus.publish("experiments", [{"id": exp.id}])

    def route(self, page: str, context: Any) -> dict[str, Any]:
        """What the engine needs to answer ``page`` for this visitor: ``scenario`` (the served one),
        ``experiment`` (its id and variant, or None) and ``mix`` (the variant's override of the weights)."""
        router = self.router
        if router is None or not router.by_page:
            return {"scenario": page, "experiment": None, "mix": None}
        served, meta, mix = router.route(page, context.user_id, context.session_id)
        if served != page and (self.engine is None or served not in self.engine.rec.pipelines):
            # a model without the variant's scenario: the page as it is, not counted
            return {"scenario": page, "experiment": None, "mix": None}
        return {"scenario": served, "experiment": meta, "mix": mix}

    # ------------------------------------------------------------------ start / stop
    def start(self) -> None:
        s = self.settings
        self.model_path = resolve_model(s.model)
        self.manifest = read_manifest(self.model_path)
        self._check_id_key(self.manifest)
        rec = Recommender.load(self.model_path)
        self.store = open_store(s.store)
        self._forget_erased(rec)
        from .exposure import LiveExposure

        self.exposure = LiveExposure(rec)
        self.metrics.bind_exposure(self.exposure)
        self.bus = open_bus(s.state_bus, max_len=s.bus_max_len, max_age_seconds=s.bus_max_age_seconds)
        self.impressions = ImpressionWriter(self.store, self.metrics, on_written=self._on_logged)
        self.load_experiments()
        meta = self.manifest.get("meta", {})
        self.engine = Engine(rec, version=self.manifest["version"],
                             trained_through_seq=int(meta.get("trained_through_seq", 0)),
                             trained_through_item_seq=int(meta.get("trained_through_item_seq", 0)),
                             store=self.store, exploration=s.exploration, max_batch=s.max_batch, threads=s.threads,
                             on_impressions=self._on_impressions, on_batch=self._on_batch,
                             snapshot_seconds=s.snapshot_seconds, bot_guard=s.bot_guard)
        # follow the bus from before the replay, so nothing published meanwhile is missed
        # (the engine skips events it already has by their sequence number)
        self.bus.start(self._on_bus)
        self.engine.start()
        _freeze_heap()
        self.metrics.set_model(self.engine.version)
        if s.watch_seconds > 0 and not (Path(s.model) / "manifest.json").is_file():
            self._watcher = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
            self._watcher.start()
        log.info("serving model %s (%s) with store %s", self.engine.version, self.model_path, self.store.url)

    # ------------------------------------------------------------------ privacy
    def _check_id_key(self, manifest: dict[str, Any]) -> None:
        """A model trained under another id key (or without one) would match no user: refused."""
        trained = manifest.get("meta", {}).get("id_key")
        mine = self.pz.key_id if self.pz is not None else None
        if trained != mine:
            raise ConfigError(
                f"the model {manifest.get('version')} was trained with user ids "
                f"{'pseudonymised under key ' + trained if trained else 'as given'}, but this service "
                f"{'pseudonymises them under key ' + mine if mine else 'has no id key (SHOPREC_ID_KEY)'}; "
                "train again with the same SHOPREC_ID_KEY as the service's")

    def _forget_erased(self, rec: Recommender) -> None:
        """Users erased after this model was fitted are served without their history."""
        from .erasure import suppressed_mask, suppression_tokens

        tokens = suppression_tokens(self.store)
        if tokens:
            ids = rec.data_.users.external_ids
            gone = ids[suppressed_mask(ids, tokens, self.pz)]
            if len(gone):
                rec.forget_users(gone.tolist())
                log.info("%d erased user(s) of the model served as new visitors until the next fit", len(gone))

    def stored_user(self, user_id: str | None) -> str | None:
        """The form in which this service keeps a user id: its pseudonym with an id key, else as given."""
        from .erasure import stored_id

        return None if user_id is None else stored_id(user_id, self.pz)

    def private(self, context: Any) -> Any:
        """The request with its user id pseudonymised (when the service has an id key)."""
        if self.pz is None or context.user_id is None:
            return context
        return context.model_copy(update={"user_id": self.stored_user(context.user_id)})

    def erase(self, user_id: str) -> dict[str, Any]:
        """Erase a user from everything this service keeps (shoprec.service.erasure; blocking: run it
        off the event loop). Raises UnknownUser when nothing is known of the id."""
        from .erasure import erase_from_store, keep_record

        sid = self.stored_user(user_id)
        eng = self.engine
        known = bool(eng.rec.data_.users.to_index([sid], missing=-1)[0] >= 0) and sid not in eng.rec.forgotten_
        if self.impressions is not None:
            self.impressions.flush()
        record, sid, sessions = erase_from_store(user_id, self.store, self.pz, known_to_model=known)
        eng.submit("call", lambda engine: engine.forget(sid, sessions)).result(timeout=120)
        record.steps.append("live state, basket, bot-guard visits and the served model's copy of the user forgotten; "
                            "mix-policy learners rebuilt from the store")
        if self.bus is not None and self.bus.shared:
            self.bus.publish("erasure", [{"user_id": sid, "sessions": sessions}])
            record.bus_entries = self.bus.forget(sid, except_kind="erasure")
            timer = threading.Timer(10.0, self._forget_on_bus, args=(sid,))
            timer.daemon = True
            timer.start()
            record.steps.append("state bus: entries naming the user deleted; the erasure itself deleted in 10 s")
        if self.settings.refit_data:
            record.models = "refit started: the next model is fitted without the user; older versions are deleted"
            self._start_refit()
        else:
            record.models = ("stale: factors and counts of the user stay in the model files until the next "
                             "`shoprec train --store …` (which leaves them out and deletes older versions)")
        keep_record(self.store, record)
        self.metrics.erasures.inc()
        return record.as_dict()

    def _forget_on_bus(self, sid: str) -> None:
        try:
            self.bus.forget(sid)
        except Exception:  # noqa: BLE001 - bounded history: the entry ages out anyway
            log.exception("could not delete an erasure from the state bus")

    def _start_refit(self) -> None:
        """``shoprec train`` on the shop's data and the store, in its own process (the watcher swaps)."""
        if self.refit is not None and self.refit.poll() is None:
            return                      # one refit at a time; it reads the store when it starts loading
        models = Path(self.settings.model)
        models = models.parent if (models / "manifest.json").is_file() else models
        cmd = [sys.executable, "-m", "shoprec", "train", "--data", self.settings.refit_data, "--store",
               self.settings.store, "--out", str(models)]
        env = dict(os.environ)
        if self.settings.id_key:
            env["SHOPREC_ID_KEY"] = self.settings.id_key
        self.refit = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log.info("refit after an erasure started (pid %d)", self.refit.pid)

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        if self.bus is not None:
            self.bus.close()
        if self.engine is not None:
            self.engine.stop()
        if self.impressions is not None:
            self.impressions.close()
        if self.store is not None:
            self.store.close()

    def log_failure(self, payload: dict[str, Any], served: str, kind: str = "internal") -> None:
        """A request of an A/B test that failed with a server error is logged as an answer without
        items and with its ``error``, so the report counts the variant's errors (a guardrail)."""
        exp = payload.get("experiment")
        if not exp or self.impressions is None:
            return
        ctx = payload["context"]
        self.impressions.add([ImpressionRecord(
            request_id=payload["request_id"], created_at=time.time(), scenario=served,
            model_version=self.engine.version if self.engine is not None else "", items=[],
            user_id=getattr(ctx, "user_id", None), session_id=payload.get("session_id"),
            context={"experiment": exp, "error": kind})])

    def _on_impressions(self, rows: list[ImpressionRecord]) -> None:
        """Log the answers (shared once logged, by :meth:`_share_answers`)."""
        writer = self.impressions
        if writer is None:     # stopping: the log is closed (the answers were already sent)
            log.warning("impression log closed; %d answers not logged", len(rows))
            return
        writer.add(rows)
        if self.exposure is not None:
            try:
                self.exposure.add(rows)
            except Exception:  # noqa: BLE001 - an audit must never fail an answer
                log.exception("live exposure audit failed on %d answers", len(rows))

    def _on_logged(self, rows: list[ImpressionRecord]) -> None:
        """After each batch of the impression log (its thread, never the engine's): the live exposure
        audit, and the answers shared with the other workers."""
        if self.exposure is not None:
            try:
                self.exposure.add(rows)
            except Exception:  # noqa: BLE001 - an audit must never stop the log
                log.exception("live exposure audit failed on %d answers", len(rows))
        self._share_answers(rows)

    def _share_answers(self, rows: list[ImpressionRecord]) -> None:
        """With several workers, share the logged answers a learning policy learns from, so every
        worker's policy counts every answer (the events reach them all already)."""
        if self.bus is not None and self.bus.shared and self.engine is not None and self.engine.learners:
            shared = [{"request_id": r.request_id, "created_at": r.created_at, "scenario": r.scenario,
                       "user_id": r.user_id, "session_id": r.session_id,
                       "items": [{"item_id": it["item_id"], "position": it["position"]} for it in r.items],
                       "context": {"policy": r.context.get("policy")}}
                      for r in rows if r.scenario in self.engine.learners]
            if shared:
                try:
                    self.bus.publish("answers", shared)
                except Exception:  # noqa: BLE001 - the store has them; a restarted worker rebuilds
                    self.metrics.errors.labels(kind="bus_publish").inc()
                    log.exception("could not share %d answers on the bus", len(shared))

    def _on_batch(self, scenario: str, n: int, seconds: float) -> None:
        self.metrics.batch_size.labels(scenario=scenario).observe(n)

    def _on_bus(self, kind: str, records: list[dict[str, Any]]) -> None:
        if kind == "events":
            self.engine.submit("events", [EventRecord.from_dict(r) for r in records])
        elif kind == "items":
            self.engine.submit("items", [ItemRecord(r["item_id"], r.get("attributes", {}), r.get("updated_at", 0.0),
                                                    r.get("seq", 0)) for r in records])
        elif kind == "answers":
            self.engine.submit("call", lambda engine: engine.learn_answers(records))
        elif kind == "experiments":
            self.load_experiments()
        elif kind == "erasure":
            for r in records:
                self.engine.submit("call", lambda engine, r=r: engine.forget(r["user_id"], r.get("sessions", [])))

    # ------------------------------------------------------------------ models
    def _watch(self) -> None:
        while not self._stop.wait(self.settings.watch_seconds):
            try:
                path = resolve_model(self.settings.model)
                if path != self.model_path:
                    self.reload(path)
            except Exception:  # noqa: BLE001 - a bad new model must not stop the service
                self.metrics.errors.labels(kind="model_reload").inc()
                log.exception("model reload failed; still serving %s", self.engine.version)

    def reload(self, path: Path | None = None) -> str:
        """Load a model (default: the current one of the models folder), bring it up to date with
        the store, and swap it in without dropping a request."""
        with self._reload_lock:
            target = resolve_model(path if path is not None else self.settings.model)
            manifest = read_manifest(target)
            self._check_id_key(manifest)
            rec = Recommender.load(target)
            self._forget_erased(rec)
            prepared = self.engine.prepare(rec, manifest)
            version = self.engine.submit("call", Engine.swap(prepared)).result(timeout=600)
            self.model_path, self.manifest = target, manifest
            _freeze_heap()
            self.metrics.set_model(version)
            self.metrics.swaps.inc()
            if self.exposure is not None:
                self.exposure.bind(rec)
            log.info("now serving model %s from %s", version, target)
            return version

    def model_info(self) -> ModelInfo:
        rec = self.engine.rec
        return ModelInfo(version=self.engine.version, created=self.manifest.get("created"),
                         scenarios=sorted(rec.pipelines), n_items=rec.data_.n_items, n_users=rec.data_.n_users,
                         trained_through_seq=self.engine.trained_through_seq, path=str(self.model_path))


def _freeze_heap() -> None:
    """Move the objects alive now (the model, the replayed state) out of the cyclic collector's
    reach: they live as long as the model, and full collections over them would stop every thread
    for tens of milliseconds under load. Objects are still freed by reference counting."""
    gc.collect()
    gc.freeze()


# --------------------------------------------------------------------------- errors
def _error(status: int, code: str, message: str, hint: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error body of the API: ``{"error": {"code", "message", "hint"}}``."""
    return JSONResponse(status_code=status, content={"error": {"code": code, "message": message, "hint": hint}},
                        headers=headers)


_HEADER_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")


def _request_id(value: bytes | str | None) -> str | None:
    """A client's ``X-Request-ID`` if it is a usable id (1–128 printable characters), else None."""
    if value is None:
        return None
    raw = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
    if not raw or len(raw) > 128 or _HEADER_CONTROL.search(raw):
        return None
    return raw.decode("latin-1")


def internal_error(request_id: str) -> JSONResponse:
    """The answer to an unexpected exception: no exception text (it may hold data, paths or SQL),
    the request id under which the server logged it."""
    return _error(500, "internal_error", f"the server failed on this request; it logged the error as request "
                  f"{request_id}", "retry later; if it persists, report the request id",
                  headers={"X-Request-ID": request_id})


def _is_union_tag(part: object) -> bool:
    """A location step that names a branch of a union (``SessionEventIn``, ``constrained-str``)."""
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part.startswith("constrained-")
                                      or part in ("str", "int", "float", "bool"))


def _validation_message(exc: RequestValidationError) -> str:
    errors = list(exc.errors())
    located = []
    for err in errors:
        loc = tuple(p for p in err.get("loc", ()) if p != "body" and not _is_union_tag(p))
        located.append((loc, err))
    # a value that failed an id/text pattern failed every other branch of its union too: say the one
    with_pattern = {loc for loc, err in located if err.get("type") == "string_pattern_mismatch"}
    parts, seen = [], set()
    for loc, err in located:
        kind = err.get("type")
        if loc in with_pattern and kind != "string_pattern_mismatch":
            continue
        where = ".".join(str(p) for p in loc) or "body"
        msg = err.get("msg", "invalid")
        if kind == "extra_forbidden":
            msg = "unknown field"
        elif kind == "string_pattern_mismatch":
            msg = pattern_problem(str(err.get("ctx", {}).get("pattern")), err.get("input")) or msg
        elif kind == "json_invalid":
            at = err.get("loc", ("body", "?"))[-1]
            where, msg = "body", f"not valid JSON (at character {at}: {err.get('ctx', {}).get('error', msg)})"
        text = f"{where}: {msg}"
        if text not in seen:
            seen.add(text)
            parts.append(text)
    return "; ".join(parts[:10]) + (f" (and {len(parts) - 10} more)" if len(parts) > 10 else "")


async def _read_body(receive, limit: int) -> tuple[list[dict], int]:
    """The ASGI messages of a request body, read until its end, a disconnect, or more than
    ``limit`` bytes; and the bytes read."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        if size > limit or not message.get("more_body", False):
            break
    return messages, size


def _replay(messages: list[dict], receive):
    """A ``receive`` that gives ``messages`` again, then the connection's own."""
    pending = messages[::-1]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay


class BodyLimit:
    """Reject bodies above ``limit`` bytes with 413, whether or not they declare their length."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")

        def too_big():
            return _error(413, "body_too_large", f"request bodies are limited to {self.limit} bytes",
                          "send smaller batches")

        if declared is not None:
            try:
                if int(declared) > self.limit:
                    return await too_big()(scope, receive, send)
            except ValueError:
                return await _error(400, "bad_content_length", "Content-Length is not a number")(scope, receive, send)
            return await self.app(scope, receive, send)   # the server holds the client to it
        # no declared length (chunked): read up to the limit here, where a 413 can still be sent
        # (an exception raised inside the route's own body reading would come out as a 400)
        messages, size = await _read_body(receive, self.limit)
        if size > self.limit:
            return await too_big()(scope, receive, send)
        return await self.app(scope, _replay(messages, receive), send)


class FastRecommend:
    """The hot path of ``POST /v1/recommendations/{scenario}``, ahead of Starlette's middleware and
    FastAPI's routing and dependency machinery (half of the HTTP thread's time under load, by
    py-spy). It keeps the same body limit.

    It answers only requests that will succeed: a served scenario, a JSON body that validates,
    the read permission. Anything else is handed, body and all, to the FastAPI route, which stays
    the one source of the validation, the error messages and the OpenAPI schema."""

    PREFIX = "/v1/recommendations/"

    def __init__(self, app, service: "Service", may_read: Callable[[str | None, str | None], bool],
                 limit: int) -> None:
        self.app = app
        self.service = service
        self.may_read = may_read
        self.limit = limit
        #: the ceiling probe (settings.ceiling_probe): each page's last computed response, as sent
        self.probe = bool(service.settings.ceiling_probe)
        self.last: dict[str, bytes] = {}

    def wants(self, scope) -> bool:
        return scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith(self.PREFIX)

    async def __call__(self, scope, receive, send):
        if not self.wants(scope):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self.app(scope, receive, send)   # the app's body limit answers
        messages, size = await _read_body(receive, self.limit)
        if messages[-1]["type"] != "http.request":  # the client went away
            return
        replay = _replay(messages, receive)
        if size > self.limit:  # the app's body limit answers
            return await self.app(scope, replay, send)
        try:
            response = await self._answer(scope, headers, b"".join(m.get("body", b"") for m in messages))
        except Exception:  # noqa: BLE001 - as the app's handler of unexpected errors
            request_id = _request_id(headers.get(b"x-request-id")) or new_id()
            self.service.metrics.errors.labels(kind="internal").inc()
            log.exception("internal error on request %s: %s %s", request_id, scope["method"], scope["path"])
            response = internal_error(request_id)
        if response is None:
            return await self.app(scope, replay, send)
        return await response(scope, replay, send)

    async def _answer(self, scope, headers: dict[bytes, bytes], body: bytes) -> Response | None:
        start = time.perf_counter()
        scenario = scope["path"][len(self.PREFIX):]
        eng = self.service.engine
        if eng is None or not eng.ready or scenario not in eng.rec.pipelines:
            return None
        if not headers.get(b"content-type", b"").startswith(b"application/json"):
            return None
        key, auth = headers.get(b"x-api-key"), headers.get(b"authorization")
        if not self.may_read(key and key.decode("latin-1"), auth and auth.decode("latin-1")):
            return None
        request_id = headers.get(b"x-request-id")
        if request_id is not None:
            request_id = _request_id(request_id)
            if request_id is None:  # the route says what is wrong with it
                return None
        try:
            context = RecommendationRequest.model_validate_json(body)
        except (ValidationError, ValueError):
            return None
        context = self.service.private(context)
        routed = self.service.route(scenario, context)
        served = routed["scenario"]
        if self.probe and headers.get(b"x-shoprec-ceiling") == b"1" and served in self.last:
            return Response(self.last[served], media_type="application/json",
                            headers={"X-Request-ID": request_id or new_id()})
        payload = {"context": context, "session_id": context.session_id, "request_id": request_id or new_id(),
                   "experiment": routed["experiment"], "mix": routed["mix"]}
        metrics = self.service.metrics
        try:
            result = await eng.run("recommend", payload, served)
        except RequestError as exc:
            metrics.errors.labels(kind="request").inc()
            return _error(400, "bad_request", str(exc))
        except Exception:  # noqa: BLE001 - as the app's handler of unexpected errors
            metrics.errors.labels(kind="internal").inc()
            log.exception("internal error on request %s: POST %s", payload["request_id"], scope["path"])
            self.service.log_failure(payload, served)
            return internal_error(payload["request_id"])
        metrics.request_seconds.labels(scenario=scenario).observe(time.perf_counter() - start)
        body = _dumps(result)
        if self.probe:
            self.last[served] = body
        return Response(body, media_type="application/json", headers={"X-Request-ID": payload["request_id"]})


# --------------------------------------------------------------------------- the app
class ShoprecAPI(FastAPI):
    """FastAPI with :class:`FastRecommend` in front of its middleware stack."""

    fast: FastRecommend | None = None

    async def __call__(self, scope, receive, send) -> None:
        fast = self.fast
        if fast is not None and fast.wants(scope):
            return await fast(scope, receive, send)
        return await self._call_app(scope, receive, send)

    async def _call_app(self, scope, receive, send) -> None:
        return await super().__call__(scope, receive, send)


def _price_flags(frame) -> list[PriceFlag]:
    return [PriceFlag(item_id=str(r.item_id), kind=r.kind, price=float(r.price),
                      usual=None if r.usual != r.usual else float(r.usual), reason=r.reason)
            for r in frame.itertuples()]


def create_app(settings: ServiceSettings) -> FastAPI:
    """The FastAPI app for ``settings`` (see the module docstring)."""
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(service.start)
        app.state.service = service
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = ShoprecAPI(title="shoprec", version="1", lifespan=lifespan,
                     description="Recommendations for every page of a shop, from events that change the next "
                                 "answer at once. Write and admin endpoints need the API key in `X-API-Key`.",
                     responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 404: {"model": ErrorBody},
                                405: {"model": ErrorBody}, 413: {"model": ErrorBody}, 422: {"model": ErrorBody},
                                500: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    app.state.service = service
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    # ------------------------------------------------------------------ errors
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        service.metrics.errors.labels(kind="validation").inc()
        return _error(422, "invalid_request", _validation_message(exc),
                      f"see the schema of {request.url.path} at /docs")

    @app.exception_handler(RequestError)
    async def _bad(request: Request, exc: RequestError):
        service.metrics.errors.labels(kind="request").inc()
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError):
        service.metrics.errors.labels(kind="store").inc()
        return _error(503, "store_unavailable", str(exc), "retry later; nothing of this request was acknowledged")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        """Starlette's and FastAPI's own errors (unknown route, wrong method, unreadable body) in the
        project's body instead of ``{"detail": …}``."""
        method, path = request.method, request.url.path
        headers = dict(exc.headers or {})
        if exc.status_code == 404:
            service.metrics.errors.labels(kind="not_found").inc()
            return _error(404, "not_found", f"no route {method} {path}", "the API is described at /docs",
                          headers=headers)
        if exc.status_code == 405:
            service.metrics.errors.labels(kind="method_not_allowed").inc()
            allowed = headers.get("Allow") or headers.get("allow")
            return _error(405, "method_not_allowed", f"{path} does not take {method}",
                          f"it takes {allowed}" if allowed else "see /docs", headers=headers)
        service.metrics.errors.labels(kind="http").inc()
        code = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 413: "body_too_large",
                415: "unsupported_media_type"}.get(exc.status_code, f"http_{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
        if exc.status_code == 400 and "parsing the body" in detail:
            detail, hint = "the body could not be read", "send JSON (content-type: application/json)"
        else:
            hint = "see /docs"
        return _error(exc.status_code, code, detail, hint, headers=headers)

    class RateLimited(Exception):
        def __init__(self, refusal: Refusal) -> None:
            self.refusal = refusal

    @app.exception_handler(RateLimited)
    async def _limited(request: Request, exc: RateLimited):
        r = exc.refusal
        service.counts["rate_limited"] += 1
        service.metrics.rate_limited.labels(budget=r.budget).inc()
        return _error(429, "rate_limited", f"more than {r.limit} write requests from {r.scope}",
                      f"retry after {r.retry_after} s; send events in batches (up to {settings.max_batch_events} "
                      "per request)", headers={"Retry-After": str(r.retry_after)})

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        request_id = _request_id(request.headers.get("x-request-id")) or new_id()
        service.metrics.errors.labels(kind="internal").inc()
        log.error("internal error on request %s: %s %s", request_id, request.method, request.url.path,
                  exc_info=exc)
        return internal_error(request_id)

    # ------------------------------------------------------------------ auth
    def _key(x_api_key: str | None, authorization: str | None) -> str | None:
        if x_api_key:
            return x_api_key
        if authorization and authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        return None

    def _is(given: str | None, expected: str | None) -> bool:
        return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())

    class Unauthorized(Exception):
        def __init__(self, need: str) -> None:
            self.need = need

    @app.exception_handler(Unauthorized)
    async def _unauthorized(request: Request, exc: Unauthorized):
        service.metrics.errors.labels(kind="auth").inc()
        return _error(401, "unauthorized", f"this endpoint needs the {exc.need}",
                      "send it in the X-API-Key header (or Authorization: Bearer <key>)")

    limits = service.limits

    def need(level: str):
        """The dependency that admits a request at ``level`` (read, events, write, admin): the key,
        and for the writes the rate limits (counted before the key is judged, so that guessing it
        is bounded too)."""
        async def check(request: Request, x_api_key: Annotated[str | None, Header()] = None,
                        authorization: Annotated[str | None, Header()] = None) -> None:
            k = _key(x_api_key, authorization)
            who = "api" if _is(k, settings.api_key) else "public" if _is(k, settings.public_key) else None
            if level != "read" and limits.enabled:
                refusal = await limits.check(request.client.host if request.client else None, who)
                if refusal is not None:
                    raise RateLimited(refusal)
            if who == "api":
                return
            if level in ("read", "events") and who == "public":
                return
            if level == "read" and not settings.read_requires_key:
                return
            raise Unauthorized("API key" if level == "admin" or level == "write" or not settings.public_key
                               else "API key or the public key")
        return check

    def may_read(x_api_key: str | None, authorization: str | None) -> bool:
        k = _key(x_api_key, authorization)
        return (not settings.read_requires_key or _is(k, settings.api_key)
                or bool(settings.public_key) and _is(k, settings.public_key))

    app.fast = FastRecommend(app._call_app, service, may_read, settings.max_body_bytes)

    def engine() -> Engine:
        if service.engine is None or not service.engine.ready:
            raise StoreError("the service is starting; not ready yet")
        return service.engine

    # ------------------------------------------------------------------ recommendations
    @app.post("/v1/recommendations/{scenario}", response_model=RecommendationResponse,
              dependencies=[Depends(need("read"))], tags=["recommendations"],
              responses={404: {"model": ErrorBody}})
    async def recommend(scenario: ScenarioName, body: RecommendationRequest,
                        x_request_id: Annotated[str | None, Header(min_length=1, max_length=128,
                                                                   pattern=HEADER_ID_PATTERN)] = None):
        """Recommendations for one page of the shop, each with the reason it is there."""
        start = time.perf_counter()
        eng = engine()
        if scenario not in eng.rec.pipelines:
            service.metrics.errors.labels(kind="unknown_scenario").inc()
            return _error(404, "unknown_scenario", f"no scenario {scenario!r}",
                          f"this model serves: {', '.join(sorted(eng.rec.pipelines))}")
        body = service.private(body)
        routed = service.route(scenario, body)
        served = routed["scenario"]
        payload = {"context": body, "session_id": body.session_id, "request_id": x_request_id or new_id(),
                   "experiment": routed["experiment"], "mix": routed["mix"]}
        try:
            result = await eng.run("recommend", payload, served)
        except RequestError:
            raise
        except Exception:
            service.log_failure(payload, served)
            raise
        service.metrics.request_seconds.labels(scenario=scenario).observe(time.perf_counter() - start)
        return Response(_dumps(result), media_type="application/json", headers={"X-Request-ID": payload["request_id"]})

    # ------------------------------------------------------------------ events
    limited = {429: {"model": ErrorBody, "description": "A rate limit was exceeded (see Retry-After)."}}

    @app.post("/v1/events", response_model=EventsAccepted, dependencies=[Depends(need("events"))],
              tags=["events"], responses=limited)
    async def post_events(body: EventBatch):
        """Store a batch of events durably, then apply it: the next request sees it. With
        ``unknown_items = refuse``, a batch naming items not in the catalogue is a 422 and nothing of
        it is stored."""
        if len(body.events) > settings.max_batch_events:
            return _error(413, "batch_too_large", f"{len(body.events)} events; at most {settings.max_batch_events} "
                          "per request", "split the batch")
        eng = engine()
        if settings.unknown_items == "refuse":
            known = eng.rec.data_.items.to_index([e.item_id for e in body.events], missing=-1)  # an immutable map
            if (known < 0).any():
                unknown = list(dict.fromkeys(e.item_id for e, i in zip(body.events, known) if i < 0))
                n_events = int((known < 0).sum())
                service.counts["events_refused_unknown_item"] += n_events
                service.counts["batches_refused_unknown_item"] += 1
                service.metrics.refused.labels(reason="unknown_item").inc(n_events)
                shown = ", ".join(repr(i) for i in unknown[:20]) + (f" and {len(unknown) - 20} more"
                                                                     if len(unknown) > 20 else "")
                return _error(422, "unknown_items", f"{n_events} of the {len(body.events)} events are about items not "
                              f"in the catalogue: {shown}; nothing of this batch was stored",
                              "PUT the items to /v1/items first, then send the batch again "
                              "(this service runs with unknown_items = refuse)")
        now = time.time()
        records = [EventRecord(event_id=e.event_id or EventRecord.new_id(), item_id=e.item_id, behaviour=e.behaviour,
                               timestamp=e.unix_time(now), received_at=now,
                               user_id=service.stored_user(e.user_id),
                               session_id=e.session_id, quantity=e.quantity, price=e.price,
                               request_id=e.request_id, position=e.position, scenario=e.scenario,
                               country=e.country, device=e.device) for e in body.events]
        res = await run_in_threadpool(service.store.append_events, records)   # durable from here on
        applied = await eng.run("events", records)
        service.bus.publish("events", [r.to_dict() for r in records])
        unknown = int(applied.get("unknown_items", 0))
        service.metrics.events.inc(res.accepted)
        service.metrics.duplicates.inc(res.duplicates)
        service.metrics.unknown_items.inc(unknown)
        c = service.counts
        c["events_accepted"] += res.accepted
        c["events_duplicate"] += res.duplicates
        c["events_unknown_item"] += unknown
        return EventsAccepted(accepted=res.accepted, duplicates=res.duplicates, unknown_items=unknown,
                              last_seq=max(res.seqs))

    # ------------------------------------------------------------------ items
    @app.put("/v1/items", response_model=ItemsAccepted, dependencies=[Depends(need("write"))], tags=["items"],
             responses=limited)
    async def put_items(body: ItemBatch):
        """Add or update catalogue items. Out of stock: never recommended from the next request on;
        a new item: recommendable at once through content and trending."""
        if len(body.items) > settings.max_batch_items:
            return _error(413, "batch_too_large", f"{len(body.items)} items; at most {settings.max_batch_items} "
                          "per request", "split the batch")
        eng = engine()
        now = time.time()
        records = [ItemRecord(it.item_id, it.model_dump(exclude={"item_id"}, exclude_none=True), now)
                   for it in body.items]
        await run_in_threadpool(service.store.upsert_items, records)
        res = await eng.run("items", records)
        service.bus.publish("items", [{"item_id": r.item_id, "attributes": r.attributes, "updated_at": r.updated_at,
                                       "seq": r.seq} for r in records])
        service.metrics.items.inc(len(records))
        flags = []
        if any("price" in r.attributes for r in records):
            from ..health.stage import item_price_flags

            priced = [r.item_id for r in records if "price" in r.attributes]
            got = await eng.run("call", lambda e: item_price_flags(e.rec, only=priced))
            if got is not None:
                flags = _price_flags(got[1])
        return ItemsAccepted(**res, price_flags=flags)

    @app.get("/v1/health/bots", dependencies=[Depends(need("admin"))], tags=["health"], responses=limited)
    async def health_bots(limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        """The visits the live guard recognised as bots (crawlers, cart-stuffers), newest first, and
        how many events it held back from the counters and rewards (all of them are stored)."""
        def look(e):
            if e.guard is None:
                return None
            return {"counts": dict(e.guard.counts), "flagged": e.guard.flagged(limit)}

        got = await engine().run("call", look)
        if got is None:
            return _error(404, "no_bot_guard", "the bot guard is off", "start the service with SHOPREC_BOT_GUARD=1")
        return got

    @app.get("/v1/health/prices", dependencies=[Depends(need("admin"))], tags=["health"],
             responses={**limited, 404: {"model": ErrorBody}})
    async def health_prices():
        """The items whose current price is abnormal (spike, drop, subsidised cut, creep), each with
        its reason: from the training data's price series and every price upserted since."""
        from ..health.stage import item_price_flags

        got = await engine().run("call", lambda e: item_price_flags(e.rec))
        if got is None:
            return _error(404, "no_price_supervision", "no scenario of the served model supervises prices",
                          'add [[rerankers]] name = "price_flags" to a scenario file and train it')
        scenario, cur = got
        return {"scenario": scenario, "flags": [f.model_dump() for f in _price_flags(cur)]}

    @app.get("/v1/health/exposure", dependencies=[Depends(need("admin"))], tags=["health"], responses=limited)
    async def health_exposure(top: Annotated[int, Query(ge=1, le=100)] = 5):
        """How the attention of the answers served is shared among sellers (or brands, categories):
        per scenario, the Gini of position-weighted exposure over the groups, the largest groups'
        shares and the share reaching small or new groups (from the impression log, decayed)."""
        return service.exposure.report(top) if service.exposure is not None else {"scenarios": {}}

    @app.get("/v1/health/protection", dependencies=[Depends(need("admin"))], tags=["health"],
             responses={**limited, 404: {"model": ErrorBody}})
    async def health_protection():
        """The items the consumer_protection rule flags (often returned, poorly reviewed, often
        late, counterfeit risk), with their rates and the note shoppers see."""
        from ..health.protection import item_protection_flags

        got = await engine().run("call", lambda e: item_protection_flags(e.rec))
        if got is None:
            return _error(404, "no_consumer_protection", "no scenario of the served model judges consumer protection",
                          'set [rules] consumer_protection = "note" (or "demote") in a scenario file and train it')
        scenario, cur = got
        return {"scenario": scenario, "flags": [
            {"item_id": r.item_id, "kinds": r.kinds.split(","), "return_rate": float(r.return_rate),
             "poor_review_rate": float(r.poor_review_rate), "late_rate": float(r.late_rate), "reason": r.reason}
            for r in cur.itertuples()]}

    # ------------------------------------------------------------------ privacy
    @app.delete("/v1/users/{user_id}", dependencies=[Depends(need("admin"))], tags=["privacy"],
                responses={404: {"model": ErrorBody}, **limited})
    async def erase_user(user_id: Annotated[str, PathParam(min_length=1, max_length=256, pattern=ID_PATTERN)]):
        """Erase a user: their events, impressions, live session and basket, policy traces, their bus
        entries and the served model's copy of them, at once; the models' factors and counts at the
        next fit (started here when the service has ``refit_data``). Returns the audit record kept
        (which holds no id)."""
        from .erasure import UnknownUser

        engine()
        try:
            return await run_in_threadpool(service.erase, user_id)
        except UnknownUser as e:
            return _error(404, "unknown_user", str(e), "check the id; an erased user is unknown afterwards")

    @app.get("/v1/admin/erasures", dependencies=[Depends(need("admin"))], tags=["privacy"], responses=limited)
    async def erasures():
        """The audit records of the erasures (no ids)."""
        from .erasure import AUDIT_KIND

        return {"erasures": [body for _, body, _ in service.store.iter_documents(AUDIT_KIND)]}

    @app.get("/v1/items/{item_id}", response_model=ItemOutFull, dependencies=[Depends(need("read"))],
             tags=["items"], responses={404: {"model": ErrorBody}})
    async def get_item(item_id: ItemIdPath):
        data = engine().rec.data_
        idx = int(data.items.to_index([item_id], missing=-1)[0])
        if idx < 0:
            return _error(404, "unknown_item", f"no item {item_id!r} in the catalogue", "PUT it to /v1/items")
        row: dict[str, Any] = {}
        if data.item_table is not None:
            row = {k: v for k, v in data.item_table.iloc[idx].to_dict().items()
                   if k in ItemOutFull.model_fields and v is not None and v == v}
        facts = next(iter(engine().rec.pipelines.values())).facts_
        row["in_stock"] = bool(facts.in_stock[idx]) if idx < facts.n_items else True
        if idx < facts.n_items and facts.price[idx] == facts.price[idx]:
            row["price"] = float(facts.price[idx])
        return ItemOutFull(item_id=item_id, **{k: v for k, v in row.items() if k != "item_id"})

    # ------------------------------------------------------------------ admin
    @app.get("/v1/admin/model", response_model=ModelInfo, dependencies=[Depends(need("admin"))], tags=["admin"],
             responses=limited)
    async def model_info():
        engine()
        return service.model_info()

    @app.get("/v1/admin/stats", response_model=AdminStats, dependencies=[Depends(need("admin"))], tags=["admin"],
             responses=limited)
    async def admin_stats():
        """This process's counts since it started: events stored, duplicates, events about items not
        in the catalogue (accepted, or refused with ``unknown_items = refuse``), rate-limited writes;
        and its engine's (which applies every worker's events)."""
        eng = service.engine
        st = eng.stats if eng is not None else None
        return AdminStats(pid=os.getpid(), started_at=service.started_at, unknown_items_policy=settings.unknown_items,
                          **service.counts, events_applied=st.events_applied if st else 0,
                          items_applied=st.items_applied if st else 0, last_event_seq=st.last_event_seq if st else 0,
                          rate_limit_storage_failures=limits.storage_failures)

    @app.get("/v1/policies/{scenario}", dependencies=[Depends(need("admin"))], tags=["admin"],
             responses={**limited, 404: {"model": ErrorBody}})
    async def policy_state(scenario: Annotated[str, PathParam(max_length=64, pattern=ID_PATTERN)]):
        """The scenario's learning mix policy: per arm its pulls, reward, mean reward, posterior mean
        and (context-free policies) its probability now; the learner's attribution counts."""
        eng = engine()
        got = await eng.run("call", lambda e: e.policy_summary(scenario))
        if got is None:
            learning = await eng.run("call", lambda e: sorted(e.learners))
            return _error(404, "no_learning_policy", f"scenario {scenario!r} has no learning mix policy",
                          f"scenarios with one: {learning}" if learning else
                          'declare [policy] name = "thompson" (or linucb, lin_ts) in the scenario file')
        return {**got, "pid": os.getpid()}

    # ------------------------------------------------------------------ experiments
    @app.post("/v1/experiments", dependencies=[Depends(need("admin"))], tags=["experiments"], status_code=201,
              responses={**limited, 409: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    async def create_experiment(body: Experiment):
        """Start an A/B test of a page: its variants are scenarios of the served model, each visitor
        (user, else session) sticks to one by a keyed hash. Started now; one running test per page."""
        eng = engine()
        missing = [v.served(body.page) for v in body.variants if v.served(body.page) not in eng.rec.pipelines]
        if missing:
            return _error(422, "unknown_scenario", f"variant scenario(s) {missing} are not in the served model",
                          f"this model serves: {', '.join(sorted(eng.rec.pipelines))}; train the variant's TOML "
                          "beside the others (shoprec train --scenarios home,path/to/home_b.toml), or make "
                          "the variant an override of a served scenario's weights")
        for v in body.variants:
            labels = [sp_.display for sp_ in eng.rec.pipelines[v.served(body.page)].specs_]
            unknown = sorted(set(v.weights or {}) - set(labels))
            if unknown:
                return _error(422, "unknown_strategy", f"variant {v.name!r} overrides the weights of {unknown}, "
                              f"which scenario {v.served(body.page)!r} does not have",
                              f"its strategies are: {', '.join(labels)}")
        old = {e.id: e for e in await run_in_threadpool(service.experiments)}
        if body.id in old:
            return _error(409, "experiment_exists", f"an experiment {body.id!r} exists already",
                          "choose another id (a stopped experiment keeps its id and its report)")
        clash = [e.id for e in old.values() if e.running and e.page == body.page]
        if clash:
            return _error(409, "page_in_test", f"page {body.page!r} is already in experiment {clash[0]!r}",
                          f"stop it first: POST /v1/experiments/{clash[0]}/stop")
        exp = body.model_copy(update={"started_at": time.time(), "stopped_at": None})
        await run_in_threadpool(service.save_experiment, exp)
        return exp.model_dump()

    @app.get("/v1/experiments", dependencies=[Depends(need("admin"))], tags=["experiments"], responses=limited)
    async def list_experiments():
        """Every experiment, running and stopped."""
        return {"experiments": [e.model_dump() for e in await run_in_threadpool(service.experiments)]}

    def _find(exp_id: str) -> Experiment | None:
        return next((e for e in service.experiments() if e.id == exp_id), None)

    @app.get("/v1/experiments/{exp_id}", dependencies=[Depends(need("admin"))], tags=["experiments"],
             responses={**limited, 404: {"model": ErrorBody}})
    async def experiment_result(exp_id: Annotated[str, PathParam(max_length=64, pattern=ID_PATTERN)]):
        """The experiment's report from the logged impressions and events: per variant CTR, cart rate,
        conversion, revenue per impression and the guardrails; the always-valid test of the primary
        metric with CUPED; its daily looks."""
        def report():
            exp = _find(exp_id)
            if exp is None:
                return None
            imps = [r for b in service.store.iter_impressions() for r in b]
            events = [r for b in service.store.iter_events() for r in b]
            return experiment_report(exp, imps, events)

        got = await run_in_threadpool(report)
        if got is None:
            return _error(404, "unknown_experiment", f"no experiment {exp_id!r}", "GET /v1/experiments lists them")
        return Response(_dumps(got), media_type="application/json")

    @app.post("/v1/experiments/{exp_id}/stop", dependencies=[Depends(need("admin"))], tags=["experiments"],
              responses={**limited, 404: {"model": ErrorBody}})
    async def stop_experiment(exp_id: Annotated[str, PathParam(max_length=64, pattern=ID_PATTERN)]):
        """Stop the test: its page is answered by its own scenario again; the report stays."""
        exp = await run_in_threadpool(_find, exp_id)
        if exp is None:
            return _error(404, "unknown_experiment", f"no experiment {exp_id!r}", "GET /v1/experiments lists them")
        if exp.stopped_at is None:
            exp = exp.model_copy(update={"stopped_at": time.time()})
            await run_in_threadpool(service.save_experiment, exp)
        return exp.model_dump()

    @app.post("/v1/admin/reload", response_model=ModelInfo, dependencies=[Depends(need("admin"))], tags=["admin"],
              responses=limited)
    async def reload():
        """Swap to the models folder's current version (requests keep being answered meanwhile)."""
        engine()
        try:
            await run_in_threadpool(service.reload)
        except (ArtifactError, ConfigError) as e:
            return _error(409, "bad_model", str(e), "write a model with `shoprec train`")
        return service.model_info()

    # ------------------------------------------------------------------ operations
    @app.get("/health", response_model=Health, tags=["operations"])
    async def health():
        eng = service.engine
        return Health(status="ok", model_version=eng.version if eng else None,
                      events_applied=eng.stats.events_applied if eng else 0,
                      last_event_seq=eng.stats.last_event_seq if eng else 0)

    @app.get("/ready", response_model=Health, tags=["operations"], responses={503: {"model": ErrorBody}})
    async def ready():
        eng = service.engine
        if eng is None or not eng.ready:
            return _error(503, "not_ready", "the model is loading or the state is being rebuilt")
        return Health(status="ready", model_version=eng.version, events_applied=eng.stats.events_applied,
                      last_event_seq=eng.stats.last_event_seq)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics():
        return Response(service.metrics.render(), media_type=service.metrics.content_type)

    # ------------------------------------------------------------------ storefront
    if settings.storefront:
        @app.get("/", include_in_schema=False)
        async def storefront():
            return FileResponse(STOREFRONT / "index.html")

        @app.get("/experiments", include_in_schema=False)
        async def experiments_page():
            """The A/B tests' dashboard (it asks for the API key; the data come from /v1/experiments)."""
            return FileResponse(STOREFRONT / "experiments.html")

        @app.get("/marketplace", include_in_schema=False)
        async def health_page():
            """The marketplace-health view: abnormal prices, bot visits (it asks for the API key)."""
            return FileResponse(STOREFRONT / "health.html")

        @app.get("/storefront/config.json", include_in_schema=False)
        async def storefront_config():
            return {"public_key": settings.public_key, "read_requires_key": settings.read_requires_key}

        @app.get("/storefront/{name}", include_in_schema=False)
        async def storefront_file(name: FileName):
            f = STOREFRONT / name
            if not f.is_file():
                return _error(404, "not_found", f"no file {name}")
            return FileResponse(f)

    return app


def app_from_env() -> FastAPI:
    """An app for ``uvicorn --factory shoprec.service.app:app_from_env``: how each worker process of
    ``shoprec serve --workers N`` starts. It follows its master (it ends when the master dies) and
    reads the settings from the master's 0600 file (``SHOPREC_SETTINGS_FILE``); without one, from
    ``SHOPREC_*`` variables."""
    from .workers import worker_setup

    path = worker_setup()
    if path:
        return create_app(ServiceSettings.from_file(Path(path)))
    return create_app(ServiceSettings.from_env())
