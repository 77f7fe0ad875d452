"""A real OTLP/HTTP receiver for tests: ``POST /v1/traces`` with a protobuf
``ExportTraceServiceRequest`` and ``POST /v1/metrics`` with an ``ExportMetricsServiceRequest``,
decoded with ``opentelemetry-proto`` as Jaeger, Phoenix or a collector would."""

from __future__ import annotations

import gzip
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, Any]
    links: list[tuple[str, str]]  # (trace_id, span_id) of each span it links to
    end_ns: int = 0

    def in_traces(self, traces: set[str]) -> bool:
        """Of one of these traces, or a trace of its own linked to one (a review)."""
        return self.trace_id in traces or any(trace in traces for trace, _ in self.links)

    @property
    def is_error(self) -> bool:
        return self.status_code == 2


@dataclass
class ReceivedPoint:
    """One data point of a metric: its attributes and its value (a sum or gauge's value, a
    histogram's count and sum)."""

    metric: str
    unit: str
    attributes: dict[str, Any]
    value: float
    count: int
    resource: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.points: list[ReceivedPoint] = []
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path.endswith("/v1/metrics"):
                    receiver.receive_metrics(body)
                    answer = ExportMetricsServiceResponse().SerializeToString()
                else:
                    receiver.receive(body)
                    answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def receive(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                            resource=resource,
                            links=[(k.trace_id.hex(), k.span_id.hex()) for k in span.links],
                            end_ns=span.end_time_unix_nano,
                        )
                    )
        with self.lock:
            self.bodies.append(body)
            self.spans.extend(spans)

    def receive_metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        points = []
        for resource_metrics in request.resource_metrics:
            resource = _attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind).data_points:
                        if kind == "histogram":
                            value, count = point.sum, point.count
                        else:
                            value = point.as_double or float(point.as_int)
                            count = 1
                        points.append(
                            ReceivedPoint(
                                metric.name,
                                metric.unit,
                                _attributes(point.attributes),
                                value,
                                count,
                                resource,
                            )
                        )
        with self.lock:
            self.points.extend(points)

    def metric_points(self, name: str) -> list[ReceivedPoint]:
        with self.lock:
            return [p for p in self.points if p.metric == name]

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class BlackHole:
    """A receiver that is down the worst way: it accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)  # connections complete in the kernel's backlog; none is served

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
