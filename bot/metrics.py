"""Prometheus metrics, on a registry of our own so tests can build several services."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("insightbot_events_total", "Inbound chat events by platform and kind",
                              ["platform", "kind"], registry=self.registry)
        self.duplicates = Counter("insightbot_duplicate_events_total",
                                  "Inbound events dropped as already handled", ["platform"],
                                  registry=self.registry)
        self.runs_active = Gauge("insightbot_runs_active", "Runs talking to a backend now",
                                 registry=self.registry)
        self.runs_finished = Counter("insightbot_runs_finished_total", "Finished runs",
                                     ["backend", "outcome", "profile"], registry=self.registry)
        self.run_seconds = Histogram("insightbot_run_seconds", "Backend run duration",
                                     ["backend", "profile"],
                                     buckets=(1, 2, 5, 10, 20, 30, 60, 120, 180, 300, 600),
                                     registry=self.registry)
        self.profile_runs_active = Gauge("insightbot_profile_runs_active",
                                         "Runs talking to a backend now, by backend profile",
                                         ["profile"], registry=self.registry)
        self.profile_runs_waiting = Gauge("insightbot_profile_runs_waiting",
                                          "Runs waiting for a free slot of their profile "
                                          "(MAX_CONCURRENT_RUNS)", ["profile"],
                                          registry=self.registry)
        self.platform_calls = Counter("insightbot_platform_calls_total",
                                      "Chat platform API calls by method and result",
                                      ["platform", "method", "result"], registry=self.registry)

        self.loop_lag = Histogram("insightbot_event_loop_lag_seconds",
                                  "How late the event loop woke a sleeping task",
                                  buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2),
                                  registry=self.registry)
        self.loop_lag_max = Gauge("insightbot_event_loop_lag_max_seconds",
                                  "The largest event-loop lag seen since start",
                                  registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
