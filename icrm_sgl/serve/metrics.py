"""The server's metrics, kept and rendered by ``prometheus_client``: counters by endpoint,
status, mode and failure kind, a latency histogram (what scrapers aggregate across
replicas), token counts and point-in-time gauges (queue depth ...)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from icrm_sgl.judging.pair_judging import PairJudgement
from icrm_sgl.plumbing.judgement import Judgement

#: Latency bucket bounds in seconds: a verdict takes from under a second (a GPU server)
#: to minutes (a busy CPU).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

#: Error-text prefix -> failure kind, for judgements that carry an error.
_ERROR_KINDS = (
    ("invalid verdict", "verdict"),
    ("verdict error", "verdict"),
    ("engine error", "engine"),
)


def failure_kind(result: Judgement | PairJudgement) -> str:
    """A failed judgement's kind: input, verdict, engine or other."""
    if result.meta.get("stage") == "input":
        return "input"
    error = result.error or ""
    return next((kind for prefix, kind in _ERROR_KINDS if error.startswith(prefix)), "other")


class Metrics:
    """The server's metrics in a registry of their own (so that several apps in one process,
    as in tests, do not share counts); the client library's metrics are thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self._requests = Counter(
            "icrm_http_requests", "HTTP requests by status", ["endpoint", "code"], registry=registry
        )
        self._latency = Histogram(
            "icrm_request_latency_seconds",
            "request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._verdicts = Counter(
            "icrm_verdicts", "valid verdicts by judging mode", ["rm_type"], registry=registry
        )
        self._failures = Counter(
            "icrm_failures", "examples or requests that failed", ["kind"], registry=registry
        )
        self._prompt = Counter("icrm_prompt_tokens", "judge prompt tokens", registry=registry)
        self._cached = Counter(
            "icrm_cached_tokens", "prompt tokens from the cache", registry=registry
        )
        self._batches = Counter("icrm_batches", "judge_batch calls", registry=registry)
        self._batched = Counter(
            "icrm_batched_examples",
            "engine calls sent (a pair in both orders counts two)",
            registry=registry,
        )
        self._lock = threading.Lock()  # the share's two counts, read together
        self._token_counts = {"prompt": 0, "cached": 0}
        share = Gauge("icrm_cached_token_share", "cached / prompt tokens", registry=registry)
        share.set_function(self._cached_share)
        self._gauges: dict[str, Gauge] = {}

    def _cached_share(self) -> float:
        with self._lock:
            prompt, cached = self._token_counts["prompt"], self._token_counts["cached"]
        return cached / prompt if prompt else 0.0

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        self._requests.labels(endpoint, str(status)).inc()
        self._latency.labels(endpoint).observe(seconds)

    def failure(self, kind: str, count: int = 1) -> None:
        self._failures.labels(kind).inc(count)

    def batch(self, results: list[tuple[str, Judgement | PairJudgement]], calls: int) -> None:
        """Count one engine batch of ``calls`` engine calls: verdicts (a reconciled pair is
        one) by mode, failures by kind, prompt tokens."""
        self._batches.inc()
        self._batched.inc(calls)
        for rm_type, result in results:
            if result.ok:
                self._verdicts.labels(rm_type).inc()
            else:
                self._failures.labels(failure_kind(result)).inc()
            if result.meta.get("from_cache"):  # its tokens were counted when it was judged
                continue
            prompt = result.meta.get("prompt_tokens") or 0
            cached = result.meta.get("cached_tokens") or 0
            self._prompt.inc(prompt)
            self._cached.inc(cached)
            with self._lock:
                self._token_counts["prompt"] += prompt
                self._token_counts["cached"] += cached

    def render(self, gauges: dict[str, float]) -> str:
        """The exposition text; ``gauges`` sets point-in-time values (queue depth ...)."""
        for name, value in gauges.items():
            if name not in self._gauges:
                self._gauges[name] = Gauge(
                    f"icrm_{name}", name.replace("_", " "), registry=self.registry
                )
            self._gauges[name].set(value)
        return generate_latest(self.registry).decode("utf-8")
