"""A small OTLP/HTTP receiver for the tests: POST /v1/metrics and /v1/logs on 127.0.0.1, each
body decoded as the official ExportMetricsServiceRequest or ExportLogsServiceRequest protobuf
message. `fail` makes it answer that many requests with 503 first (an exporter must retry)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[ExportMetricsServiceRequest] = []
        self.logs: list[ExportLogsServiceRequest] = []
        self.fail = 0  # requests still to be refused with 503
        self.refused = 0
        self.lock = threading.Lock()
        self.url = ""

    def log_records(self) -> list[tuple[dict, object]]:
        """(resource attributes, log record) of every log record received, in order."""
        with self.lock:
            requests = list(self.logs)
        return [(_attributes(rl.resource.attributes), record) for request in requests
                for rl in request.resource_logs for sl in rl.scope_logs for record in sl.log_records]

    def histogram_points(self, name: str) -> list[tuple[dict, dict, object]]:
        """(resource attributes, point attributes, point) of every data point of
        histogram `name` in the latest export that has it (cumulative temporality)."""
        with self.lock:
            requests = list(self.requests)
        for request in reversed(requests):
            found = []
            for rm in request.resource_metrics:
                resource = _attributes(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name == name:
                            found += [(resource, _attributes(p.attributes), p) for p in metric.histogram.data_points]
            if found:
                return found
        return []


def _attributes(kvs) -> dict:
    return {kv.key: kv.value.string_value for kv in kvs}


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            kinds = {"/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse, receiver.requests),
                     "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, receiver.logs)}
            if self.path not in kinds:
                self.send_response(404)
                self.end_headers()
                return
            with receiver.lock:
                refuse = receiver.fail > 0
                if refuse:
                    receiver.fail -= 1
                    receiver.refused += 1
            if refuse:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            request_type, response_type, kept = kinds[self.path]
            request = request_type()
            request.ParseFromString(body)
            with receiver.lock:
                kept.append(request)
            answer = response_type().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
