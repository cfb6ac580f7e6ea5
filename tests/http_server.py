"""A local HTTP server on 127.0.0.1 serving recorded fixtures, scriptable per path:
ETag/304 conditional GET, a run of 5xx replies, a delay longer than the client waits,
redirects, Retry-After, a body dripped a byte at a time, a pre-compressed (bomb) body, and
a server that answers 304 to any conditional request."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    body: bytes
    content_type: str = "application/octet-stream"
    etag: str | None = None
    failures: list[int] = field(default_factory=list)  # statuses to answer first, one per hit
    delay: float = 0.0
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)  # e.g. Location, Retry-After
    failure_headers: dict[str, str] = field(default_factory=dict)  # sent with `failures`
    drip: float = 0.0  # seconds between bytes of the body
    encoding: str | None = None  # Content-Encoding of an already encoded body
    always_304: bool = False  # "not modified" to every request, whatever it asks


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    status: int


class FixtureServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                route = server.routes.get(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if route is None:
                    status, body, ctype = 404, b"not found", "text/plain"
                elif route.failures:
                    status, body, ctype = route.failures.pop(0), b"oops", "text/plain"
                elif route.etag and headers.get("if-none-match") == route.etag:
                    status, body, ctype = 304, b"", ""
                elif route.always_304:
                    status, body, ctype = 304, b"", ""
                else:
                    status, body, ctype = route.status, route.body, route.content_type
                if route is not None and route.delay:
                    time.sleep(route.delay)
                server.hits.append(Hit(self.path, headers, status))
                try:
                    self.send_response(status)
                    if ctype:
                        self.send_header("Content-Type", ctype)
                    if route is not None and route.etag and status in (200, 304):
                        self.send_header("ETag", route.etag)
                    extra = {} if route is None else (
                        route.failure_headers if status != route.status and status != 304
                        else route.headers)
                    for name, value in extra.items():
                        self.send_header(name, value)
                    if route is not None and route.encoding and status == 200:
                        self.send_header("Content-Encoding", route.encoding)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if route is not None and route.drip and status == 200:
                        for index in range(len(body)):
                            self.wfile.write(body[index:index + 1])
                            self.wfile.flush()
                            time.sleep(route.drip)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout test)

            def log_message(self, *args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self) -> FixtureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
