"""Prometheus metrics of one service process (its own registry, so several apps can live in one
process, as in the tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25,
                   0.5, 1.0, 2.5)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.request_seconds = Histogram("shoprec_recommendation_seconds",
                                         "Time to answer a recommendation request, by scenario",
                                         ["scenario"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("shoprec_batch_requests", "Requests answered together in one batch",
                                    ["scenario"], buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.events = Counter("shoprec_events_ingested_total", "Events stored and applied", registry=r)
        self.duplicates = Counter("shoprec_events_duplicate_total", "Events already stored (retries)", registry=r)
        self.unknown_items = Counter("shoprec_events_unknown_item_total",
                                     "Events stored about items not in the catalogue (not used online until "
                                     "the item is PUT)", registry=r)
        self.refused = Counter("shoprec_events_refused_total", "Events refused, by reason (nothing of their "
                               "batch stored)", ["reason"], registry=r)
        self.rate_limited = Counter("shoprec_rate_limited_total", "Write requests answered 429, by the budget "
                                    "they exceeded", ["budget"], registry=r)
        self.items = Counter("shoprec_items_upserted_total", "Catalogue items added or updated", registry=r)
        self.impressions = Counter("shoprec_impressions_logged_total", "Responses logged as impressions",
                                   registry=r)
        self.errors = Counter("shoprec_errors_total", "Error responses by kind", ["kind"], registry=r)
        self.http = Counter("shoprec_http_responses_total", "HTTP responses by route and status",
                            ["route", "status"], registry=r)
        self.model = Gauge("shoprec_model_info", "The model version served", ["version"], registry=r)
        self.erasures = Counter("shoprec_erasures_total", "Users erased (DELETE /v1/users/{id})", registry=r)
        self.swaps = Counter("shoprec_model_swaps_total", "Model versions swapped in", registry=r)

    def set_model(self, version: str) -> None:
        self.model.clear()
        self.model.labels(version=version).set(1)

    def bind_exposure(self, exposure) -> None:
        """Export the live exposure audit (shoprec.service.exposure) as gauges, read at each scrape."""
        from prometheus_client.core import GaugeMetricFamily

        class _Exposure:
            def collect(self_inner):
                rep = exposure.report(top=1)
                by = rep.get("group_by") or "none"
                gini = GaugeMetricFamily("shoprec_exposure_gini", "Gini of position-weighted exposure over the "
                                         "groups (seller, brand or category) in the answers served",
                                         labels=["scenario", "group_by"])
                small = GaugeMetricFamily("shoprec_exposure_small_groups_share", "Share of exposure reaching "
                                          "small or new groups", labels=["scenario", "group_by"])
                for scenario, r in rep["scenarios"].items():
                    gini.add_metric([scenario, by], r["gini"])
                    small.add_metric([scenario, by], r["small_groups_share"])
                yield gini
                yield small

        if getattr(self, "_exposure_collector", None) is not None:
            self.registry.unregister(self._exposure_collector)
        self._exposure_collector = _Exposure()
        self.registry.register(self._exposure_collector)

    def render(self) -> bytes:
        return generate_latest(self.registry)
