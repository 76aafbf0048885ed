"""A webhook receiver for Alertmanager, started by the alerting tests."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhooks:
    """Records the alerts each receiver path (/page, /ticket, /release) is sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.alerts: list[tuple[str, dict]] = []  # (path, alert)
        webhooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with webhooks.lock:
                    webhooks.alerts += [(self.path, alert) for alert in body["alerts"]]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self, path: str, **labels: str) -> list[dict]:
        with self.lock:
            return [a for p, a in self.alerts if p == path and labels.items() <= a["labels"].items()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
