"""A scripted stand-in HTTP server for hosted-engine tests: it answers POSTs from a list
of (status, JSON body) replies and records every request body it received."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The request fields OpenAI's chat completions endpoint knows (a subset is enough here).
OPENAI_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "response_format",
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "frequency_penalty",
        "presence_penalty",
        "seed",
        "stop",
        "n",
        "stream",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "user",
    }
)


class _Listener(ThreadingHTTPServer):
    """socketserver's listen backlog (5) overflows when a batch's threads connect at once
    on a loaded machine, and the kernel resets some connections; real servers listen with
    far more (uvicorn: 2048)."""

    request_queue_size = 128


class StandinServer:
    """Replies in order (the last one repeats); ``requests`` holds the parsed bodies.

    With ``known_fields``, a request carrying any other field is refused with HTTP 400,
    as OpenAI does ("Unrecognized request argument supplied").
    """

    def __init__(
        self,
        replies: list[tuple[int, dict[str, Any]]],
        known_fields: frozenset[str] | None = None,
    ) -> None:
        self.known_fields = known_fields
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        handler = self._handler()
        self.httpd = _Listener(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _next(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.paths.append(path)
        self.requests.append(body)
        unknown = sorted(set(body) - self.known_fields) if self.known_fields else []
        if unknown:
            return error_reply(400, f"Unrecognized request argument supplied: {unknown[0]}")
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                status, reply = server._next(self.path, json.loads(self.rfile.read(length)))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> StandinServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_reply(content: str, finish_reason: str = "stop") -> tuple[int, dict[str, Any]]:
    """An OpenAI chat-completion response carrying ``content`` (``finish_reason`` "length":
    cut by its token budget)."""
    return 200, {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "standin",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 20,
            "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 64},
        },
    }


def error_reply(status: int, message: str) -> tuple[int, dict[str, Any]]:
    """An OpenAI-style error body."""
    return status, {"error": {"message": message, "type": "error", "code": None}}


#: A valid pairwise verdict, for stand-ins that answer with one.
VALID = {
    "analysis of A": "Concrete.",
    "analysis of B": "Vague.",
    "reason of A=B": "Both polite.",
    "reason of A>B": "A is specific.",
    "reason of B>A": "B is shorter.",
    "choice": "A+",
}
