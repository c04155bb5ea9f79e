"""Anomalies on run history: robust z-scores (median / MAD) with a minimum history length."""

from __future__ import annotations

import statistics

from aggregator.metadata.quality_models import StreamProfile
from aggregator.quality.checks import CheckResult
from aggregator.quality.config import AnomalySpec
from aggregator.quality.metrics import StreamMetrics


def robust_z(value: float, past: list[float]) -> float:
    """MADs between ``value`` and the median of ``past`` (inf: MAD is 0 and value differs)."""
    median = statistics.median(past)
    mad = statistics.median([abs(x - median) for x in past])
    if mad == 0:
        return 0.0 if value == median else float("inf")
    return 0.6745 * (value - median) / mad


def _metric(name: str, m: StreamMetrics | StreamProfile) -> dict[str, float]:
    if name == "row_count":
        return {"row_count": float(m.rows_out)}
    if name == "duration":
        return {"duration": float(m.seconds)}
    if name == "freshness":
        return {} if m.freshness_seconds is None else {"freshness": float(m.freshness_seconds)}
    return {
        f"null_rate:{col}": float(p.get("null_rate", 0.0)) for col, p in (m.columns or {}).items()
    }


def detect(
    spec: AnomalySpec, stream: str, current: StreamMetrics, past: list[StreamProfile]
) -> list[CheckResult]:
    """One result per metric; failed when history is long enough and |z| > threshold."""
    results = []
    for name in spec.metrics:
        for key, value in _metric(name, current).items():
            series = [h[key] for h in (_metric(name, p) for p in past) if key in h]
            result = CheckResult(
                f"stream {stream!r}: anomaly {key}", "anomaly", None, spec.severity, 1
            )
            if len(series) < spec.min_history:
                result.detail = (
                    f"{key} = {value:g}; {len(series)} of {spec.min_history} runs of history"
                )
            else:
                z = robust_z(value, series)
                median = statistics.median(series)
                result.detail = f"{key} = {value:g}, median {median:g}, robust z {z:.2f}"
                result.failed = 1 if abs(z) > spec.threshold else 0
            results.append(result)
    return results
