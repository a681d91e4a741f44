"""A minimal OpenAI-compatible chat-completions server for the tests: 127.0.0.1 on a free port, in a thread.

GET /v1/models lists the given models (or answers what the test scripts); POST /v1/chat/completions answers
what the test scripts: a text, a status, a raw body, a hang, or a connection closed without an answer (and, to
a request with a JSON-schema ``response_format``, scripted JSON: `json_answers`). Every
request's headers and JSON body are recorded.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spac.generation.requests import CaptionRequest, TextGenerator


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    body: bytes = b""
    hang_s: float = 0.0  # wait this long before answering (released at once when the server stops)
    close: bool = False  # close the connection without answering
    trickle_s: float = 0.0  # send the body one byte at a time, this long apart
    headers: tuple[tuple[str, str], ...] = ()


def text_reply(text: Any) -> Reply:
    """A chat completion whose message content is ``text`` (any JSON value, to script wrong types)."""
    completion = {
        "id": "fake",
        "object": "chat.completion",
        "model": "tiny",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
    }
    return Reply(body=json.dumps(completion).encode())


def scripted(*replies: Reply) -> Callable[[dict], Reply]:
    """Replies in the order the requests arrive; the last one repeats."""
    queue = list(replies)
    lock = threading.Lock()

    def answer(_request: dict) -> Reply:
        with lock:
            return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def echo_instruction(request: dict) -> Reply:
    """Answers each request with its own instruction text (so a test can match answers to requests)."""
    return text_reply("echo: " + request["messages"][-1]["content"][-1]["text"])


def json_answers(answer: Any, other: Callable[[dict], Reply] = echo_instruction) -> Callable[[dict], Reply]:
    """Answers a request that carries a ``response_format`` (a JSON schema) with ``answer`` as JSON text (or, if
    ``answer`` is callable, with what it returns for the request's body), any other request with ``other``."""

    def reply(request: dict) -> Reply:
        if "response_format" not in request:
            return other(request)
        return text_reply(json.dumps(answer(request) if callable(answer) else answer))

    return reply


def served_by(generator: TextGenerator) -> Callable[[dict], Reply]:
    """Answers with a text generator of ours (the tiny model in process): a chat server that runs a model, one
    request at a time; a failed request is a 500."""
    lock = threading.Lock()

    def answer(request: dict) -> Reply:
        *system, user = request["messages"]
        image, text = user["content"]
        jpeg = base64.b64decode(image["image_url"]["url"].removeprefix("data:image/jpeg;base64,"))
        caption_request = CaptionRequest(
            key=str(request["seed"]),
            image_jpeg=jpeg,
            system=system[0]["content"] if system else "",
            instruction=text["text"],
            style_id="served",
        )
        with lock:
            [generated] = generator.generate([caption_request])
        return text_reply(generated.text) if generated.text is not None else Reply(500, b"generation failed")

    return answer


class FakeChatServer:
    """``with FakeChatServer(answer) as server:`` serves ``server.base_url`` (…/v1) until the block ends."""

    def __init__(
        self,
        answer: Callable[[dict], Reply] = echo_instruction,
        models: tuple[str, ...] = ("tiny",),
        models_reply: Reply | None = None,
    ) -> None:
        self.answer = answer
        models_list = {"object": "list", "data": [{"id": name, "object": "model"} for name in models]}
        self.models_reply = models_reply or Reply(body=json.dumps(models_list).encode())
        self.requests: list[tuple[dict[str, str], dict]] = []  # (headers, JSON body) of each chat request
        self.paths: list[str] = []  # of every request, GET or POST
        self.stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


def _handler_for(server: FakeChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: object) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:
            server.paths.append(self.path)
            if self.path != "/v1/models":
                return self._send(Reply(404, b'{"error": "not found"}'))
            self._send(server.models_reply)

        def do_POST(self) -> None:
            server.paths.append(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            server.requests.append((dict(self.headers.items()), body))
            reply = server.answer(body)
            if reply.hang_s:
                server.stopping.wait(reply.hang_s)
            if reply.close:
                self.close_connection = True
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.end_headers()  # no Content-Length: the body ends when the connection closes (HTTP/1.0)
                step = 1 if reply.trickle_s else 1 << 20
                for start in range(0, len(reply.body), step):
                    self.wfile.write(reply.body[start : start + step])
                    if reply.trickle_s and server.stopping.wait(reply.trickle_s):
                        return
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a capped body)
                pass

    return Handler
