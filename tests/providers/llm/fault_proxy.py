"""A real HTTP proxy in front of the llama.cpp server that misbehaves on command.

Tests queue faults (``proxy.push(Fault.status(429, retry_after=1))``) or set one for every
request (``proxy.always = Fault.status(500)``); requests without a fault are forwarded
unchanged. It records every request it receives (path, query, headers, JSON body, arrival time),
so tests can count attempts and check what the SDK sent. Azure-style paths
(``/openai/deployments/<name>/chat/completions``) are forwarded to ``/v1/chat/completions``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx

FaultKind = Literal["status", "delay", "cut", "rewrite"]


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "injected fault"
    seconds: float = 0.0
    after_events: int = 0
    content: str = ""

    @classmethod
    def error(
        cls, status: int, *, retry_after: str | float | None = None, message: str = ""
    ) -> Fault:
        """Answer with ``status`` and an OpenAI-style error body, without forwarding."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls("status", status=status, headers=headers, message=message or f"HTTP {status}")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait before forwarding (a slow server: the client's read timeout fires first)."""
        return cls("delay", seconds=seconds)

    @classmethod
    def cut(cls, after_events: int = 0) -> Fault:
        """Forward, but drop the connection mid-body: a stream after ``after_events`` SSE
        events, a plain reply after half its bytes."""
        return cls("cut", after_events=after_events)

    @classmethod
    def rewrite(cls, content: str) -> Fault:
        """Forward, then replace the reply's message content (e.g. with non-JSON); in a
        stream, the first text delta carries it and later ones are emptied."""
        return cls("rewrite", content=content)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.always: Fault | None = None
        self.requests: list[Seen] = []
        self.closed = False
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=httpx.Timeout(120, connect=5))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def close(self) -> None:
        self.closed = True
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def _record(self, seen: Seen) -> Fault | None:
        with self._lock:
            self.requests.append(seen)
            return self._faults.popleft() if self._faults else self.always


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive and chunked streams, like a real server

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            try:
                self._serve()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (e.g. its read timeout)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            body = json.loads(raw) if raw else None
            fault = proxy._record(
                Seen(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
            )
            if fault is not None and fault.kind == "status":
                self._error(fault)
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.seconds)
                if proxy.closed:
                    return
            path = parts.path
            if path.startswith("/openai/deployments/"):
                path = "/v1/" + path.split("/", 4)[4]  # .../<deployment>/chat/completions
            streamed = isinstance(body, dict) and bool(body.get("stream"))
            with proxy._client.stream(
                self.command,
                proxy.upstream + path,
                content=raw,
                headers={"content-type": "application/json"},
            ) as upstream:
                if streamed and upstream.status_code == 200:
                    self._relay_stream(upstream, fault)
                else:
                    self._relay_whole(upstream, fault)

        def _error(self, fault: Fault) -> None:
            payload = json.dumps(
                {"error": {"message": fault.message, "type": "injected", "code": fault.status}}
            ).encode()
            self.send_response(fault.status)
            for name, value in fault.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _relay_whole(self, upstream: httpx.Response, fault: Fault | None) -> None:
            payload = upstream.read()
            if fault is not None and fault.kind == "rewrite":
                data = json.loads(payload)
                data["choices"][0]["message"]["content"] = fault.content
                payload = json.dumps(data).encode()
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", upstream.headers.get("content-type", "text/plain"))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if fault is not None and fault.kind == "cut":
                self.wfile.write(payload[: len(payload) // 2])
                self.close_connection = True  # fewer bytes than announced: a dropped reply
                return
            self.wfile.write(payload)

        def _relay_stream(self, upstream: httpx.Response, fault: Fault | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            cut_after = fault.after_events if fault is not None and fault.kind == "cut" else None
            rewrite = fault.content if fault is not None and fault.kind == "rewrite" else None
            sent = 0
            event: list[str] = []
            for received in upstream.iter_lines():
                line = received
                if rewrite is not None and line.startswith("data: {"):
                    line, rewrite = _rewrite_delta(line, rewrite)
                event.append(line)
                if line:
                    continue
                if cut_after is not None and sent >= cut_after:
                    # No terminating chunk: the client sees the connection drop mid-stream.
                    self.close_connection = True
                    return
                self._chunk(("\n".join(event) + "\n").encode())
                sent += 1
                event = []
            if event and any(event):
                self._chunk(("\n".join(event) + "\n\n").encode())
            self.wfile.write(b"0\r\n\r\n")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    return Handler


def _rewrite_delta(line: str, content: str) -> tuple[str, str]:
    """A stream's ``data:`` line with its text replaced: the first text delta carries
    ``content``, later ones nothing. Returns the line and what is left to send."""
    data = json.loads(line[len("data: ") :])
    choices = data.get("choices") or []
    delta = choices[0].get("delta", {}) if choices else {}
    if isinstance(delta.get("content"), str):
        delta["content"], content = content, ""
    return "data: " + json.dumps(data), content
