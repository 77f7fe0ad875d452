"""The GenAI client metrics of the OpenTelemetry conventions, recorded for every real model call:
``gen_ai.client.operation.duration`` (seconds, with ``error.type`` when the call failed) and
``gen_ai.client.token.usage`` (tokens, one measurement per ``gen_ai.token.type``). Pushed over
OTLP with the traces' endpoint; a no-op without one."""

from __future__ import annotations

from typing import Any

from agents import semconv
from agents.contract import Usage
from harness_site.otel_metrics import meter

# The conventions' advised bucket boundaries.
DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92]  # fmt: skip
TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                 16777216, 67108864]  # fmt: skip
# The attributes of a chat span that the metrics carry (low cardinality: no agent or run ids).
METRIC_ATTRIBUTES = (
    semconv.OPERATION,
    semconv.PROVIDER,
    semconv.REQUEST_MODEL,
    semconv.SERVER_ADDRESS,
    semconv.SERVER_PORT,
)
_instruments: dict[str, Any] = {}


def _histograms() -> dict[str, Any]:
    if not _instruments:
        _instruments["duration"] = meter().create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        _instruments["tokens"] = meter().create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
    return _instruments


def record_call(
    span_attributes: dict[str, Any],
    seconds: float,
    *,
    usage: Usage | None = None,
    response_model: str = "",
    error_type: str = "",
) -> None:
    """One model call: its duration, and its tokens when it answered."""
    attributes = {k: span_attributes[k] for k in METRIC_ATTRIBUTES if k in span_attributes}
    if response_model:
        attributes[semconv.RESPONSE_MODEL] = response_model
    if error_type:
        attributes[semconv.ERROR_TYPE] = error_type
    instruments = _histograms()
    instruments["duration"].record(seconds, attributes)
    if usage is not None:
        for kind, tokens in (("input", usage.input_tokens), ("output", usage.output_tokens)):
            instruments["tokens"].record(tokens, {**attributes, "gen_ai.token.type": kind})
