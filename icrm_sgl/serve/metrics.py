"""Counters and latency quantiles, rendered in the Prometheus text format (no client
library needed: the format is a few lines of text)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from typing import Any

from icrm_sgl.judgement import Judgement

QUANTILES = (0.5, 0.9, 0.95, 0.99)

#: Error-text prefix -> failure kind, for judgements that carry an error.
_ERROR_KINDS = (
    ("invalid verdict", "verdict"),
    ("verdict error", "verdict"),
    ("engine error", "engine"),
)


def failure_kind(result: Judgement) -> str:
    """A failed judgement's kind: input, verdict, engine or other."""
    if result.meta.get("stage") == "input":
        return "input"
    error = result.error or ""
    return next((kind for prefix, kind in _ERROR_KINDS if error.startswith(prefix)), "other")


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted ``values`` by the nearest-rank method."""
    index = min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))
    return values[index]


class Metrics:
    """Thread-safe counters the server and its batch worker update."""

    def __init__(self, window: int = 4096) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.verdicts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self.batches = 0
        self.batched_examples = 0
        self._latency: dict[str, deque[float]] = {}
        self._latency_sum: defaultdict[str, float] = defaultdict(float)
        self._latency_count: Counter[str] = Counter()
        self._window = window

    def request(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1
            self._latency.setdefault(endpoint, deque(maxlen=self._window)).append(seconds)
            self._latency_sum[endpoint] += seconds
            self._latency_count[endpoint] += 1

    def failure(self, kind: str, count: int = 1) -> None:
        with self._lock:
            self.failures[kind] += count

    def batch(self, results: list[tuple[str, Judgement]]) -> None:
        """Count one engine batch: verdicts by mode, failures by kind, prompt tokens."""
        with self._lock:
            self.batches += 1
            self.batched_examples += len(results)
            for rm_type, result in results:
                if result.ok:
                    self.verdicts[rm_type] += 1
                else:
                    self.failures[failure_kind(result)] += 1
                if not result.meta.get("from_cache"):  # its tokens were counted before
                    self.tokens["prompt"] += result.meta.get("prompt_tokens") or 0
                    self.tokens["cached"] += result.meta.get("cached_tokens") or 0

    def render(self, gauges: dict[str, float]) -> str:
        """The exposition text; ``gauges`` adds point-in-time values (queue depth ...)."""
        with self._lock:
            lines: list[str] = []
            _family(lines, "icrm_http_requests_total", "counter", "HTTP requests by status")
            for (endpoint, status), n in sorted(self.requests.items()):
                lines.append(
                    f'icrm_http_requests_total{{endpoint="{endpoint}",code="{status}"}} {n}'
                )
            _family(lines, "icrm_verdicts_total", "counter", "valid verdicts by judging mode")
            _samples(lines, "icrm_verdicts_total", "rm_type", self.verdicts)
            _family(lines, "icrm_failures_total", "counter", "examples or requests that failed")
            _samples(lines, "icrm_failures_total", "kind", self.failures)
            self._render_latency(lines)
            prompt, cached = self.tokens["prompt"], self.tokens["cached"]
            scalars: list[tuple[str, str, str, float]] = [
                ("icrm_prompt_tokens_total", "counter", "judge prompt tokens", prompt),
                ("icrm_cached_tokens_total", "counter", "prompt tokens from the cache", cached),
                (
                    "icrm_cached_token_share",
                    "gauge",
                    "cached / prompt tokens",
                    _ratio(cached, prompt),
                ),
                ("icrm_batches_total", "counter", "judge_batch calls", self.batches),
                (
                    "icrm_batched_examples_total",
                    "counter",
                    "examples sent to the engine",
                    self.batched_examples,
                ),
            ]
            scalars += [
                (f"icrm_{name}", "gauge", name.replace("_", " "), v) for name, v in gauges.items()
            ]
            for name, kind, help_text, value in scalars:
                _family(lines, name, kind, help_text)
                lines.append(f"{name} {_number(value)}")
            return "\n".join(lines) + "\n"

    def _render_latency(self, lines: list[str]) -> None:
        name = "icrm_request_latency_seconds"
        _family(lines, name, "summary", f"request latency (quantiles over the last {self._window})")
        for endpoint, window in sorted(self._latency.items()):
            ordered = sorted(window)
            for q in QUANTILES:
                label = f'endpoint="{endpoint}",quantile="{q}"'
                lines.append(f"{name}{{{label}}} {_number(quantile(ordered, q))}")
            lines.append(
                f'{name}_sum{{endpoint="{endpoint}"}} {_number(self._latency_sum[endpoint])}'
            )
            lines.append(f'{name}_count{{endpoint="{endpoint}"}} {self._latency_count[endpoint]}')


def _family(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _samples(lines: list[str], name: str, label: str, counts: Counter[str]) -> None:
    lines += [f'{name}{{{label}="{key}"}} {n}' for key, n in sorted(counts.items())]


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _number(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)
