"""A forward HTTP proxy on 127.0.0.1 for the judge tests (stdlib only).

Plain-HTTP requests come in absolute form (``POST http://host/v1/...``) and are relayed to a fixed
local port whatever host they name (so a judge host that resolves nowhere still reaches the fake
judge); ``CONNECT`` requests are tunnelled to the port they name. With ``auth=(user, password)``
a request without that ``Proxy-Authorization`` gets 407, and with ``echo=True`` the 407's body
repeats the request's headers, as a careless proxy might. ``redirect_to`` turns it into a server
that answers every POST with 307 to the same path under that URL. Records what it saw in ``seen``.
"""

from __future__ import annotations

import base64
import http.client
import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeProxy:
    def __init__(self, target_port: int | None = None, auth: tuple | None = None, echo: bool = False, redirect_to: str | None = None):
        self.target_port = target_port
        self.auth = auth
        self.echo = echo
        self.redirect_to = redirect_to
        self.seen: list[tuple[str, str, dict]] = []  # (method, path, headers)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _refuse(self) -> bool:
                if proxy.auth is None:
                    return False
                expected = "Basic " + base64.b64encode(f"{proxy.auth[0]}:{proxy.auth[1]}".encode()).decode()
                if self.headers.get("Proxy-Authorization") == expected:
                    return False
                body = {"error": "proxy authentication required"}
                if proxy.echo:
                    body["request_headers"] = dict(self.headers.items())
                data = json.dumps(body).encode()
                self.send_response(407, "Proxy Authentication Required")
                self.send_header("Proxy-Authenticate", 'Basic realm="fake"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True

            def do_CONNECT(self):  # noqa: N802
                proxy.seen.append(("CONNECT", self.path, dict(self.headers.items())))
                if self._refuse():
                    self.close_connection = True
                    return
                host, _, port = self.path.rpartition(":")
                try:
                    upstream = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                conns = [self.connection, upstream]
                try:
                    while True:
                        ready, _, _ = select.select(conns, [], [], 10)
                        if not ready:
                            break
                        for sock in ready:
                            data = sock.recv(65536)
                            if not data:
                                raise OSError
                            (upstream if sock is self.connection else self.connection).sendall(data)
                except OSError:
                    pass
                finally:
                    upstream.close()
                    self.close_connection = True

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append(("POST", self.path, dict(self.headers.items())))
                if proxy.redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", proxy.redirect_to + self.path.split("/v1", 1)[-1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self._refuse():
                    return
                path = "/" + self.path.split("://", 1)[-1].split("/", 1)[-1]
                conn = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection", "proxy-authorization")}
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def __enter__(self) -> FakeProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
