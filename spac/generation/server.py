"""A text generator backed by an OpenAI-compatible chat-completions server (vLLM, SGLang, `transformers serve`,
TGI, Ollama): one POST per request, several in flight at once, each retried with back-off before it is given up
as a failure kind.

Our own client on the standard library: Beam's OpenAIModelHandler needs the `openai` package, which is not a
dependency of this project.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from common.digests import stable_int
from common.errors import InputError, error_line
from spac.generation.requests import CaptionRequest, DecodingSettings, GeneratedText

DEFAULT_API_KEY_ENV = "SPAC_MLLM_API_KEY"
# An answer is one or two sentences in a JSON envelope (a few KB); anything past this is not an answer.
MAX_ANSWER_BYTES = 1 << 20
_READ_CHUNK = 1 << 16
# Failure kinds worth another try: the server may recover; a 4xx says the request itself is wrong.
RETRIED = frozenset({"timeout", "http_5xx", "refused", "bad_response"})
# ... except these two 4xx statuses, which say "not now" rather than "never".
_RETRIED_4XX = frozenset({408, 429})

logger = logging.getLogger(__name__)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an HTTPError instead of a second request (which would send the key to its address)."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class ServerUnreachableError(InputError):
    """The caption-model server could not be reached, or refused us, at launch."""


class _Failure(Exception):
    """One attempt's failure: its kind (a GeneratedText failure kind) and a one-line reason."""

    def __init__(self, kind: str, reason: str, retry: bool | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.retry = kind in RETRIED if retry is None else retry


def request_seed(decoding: DecodingSettings, request: CaptionRequest) -> int:
    """The sampling seed of one request: from the run's seed, the sample key and the style, so a text does not
    depend on which other requests share its batch (both backends use it)."""
    return stable_int(decoding.seed, request.key, request.style_id, bits=31)


def check_base_url(base_url: str) -> str:
    """The server's base URL (e.g. http://host:8000/v1) without a trailing slash; one line for a URL that is not
    http(s)://host[:port][/path], or that carries credentials (the key goes in an environment variable)."""
    # The messages never echo the URL: a malformed one may hold a key.
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("the caption-model server URL must be http(s)://host[:port][/path]")
    if parts.username is not None or parts.password is not None:
        raise InputError(
            "the caption-model server URL must not carry credentials: put the API key in the "
            "environment variable named by the API-key flag"
        )
    if parts.query or parts.fragment:
        raise InputError("the caption-model server URL must not have a query or fragment")
    return parts.geturl().rstrip("/")


class OpenAIServerGenerator:
    """Writes one text per request through POST {base_url}/chat/completions; never raises for one request.

    A request is tried ``1 + retries`` times, waiting ``backoff_s``, then twice as long each time, after a timeout,
    a 5xx (or 408/429), a connection refused or dropped, or an answer that is not a chat completion with a text;
    then it is a ``GeneratedText(None, failure=kind)`` with kind "timeout", "http_5xx", "http_4xx", "refused" or
    "bad_response" (also a redirect, never followed: it would carry the API key elsewhere). ``timeout_s`` bounds
    each socket wait and the reading of the body, per attempt.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        timeout_s: float = 60.0,
        concurrency: int = 8,
        retries: int = 3,
        backoff_s: float = 1.0,
        decoding: DecodingSettings | None = None,
    ) -> None:
        self.base_url = check_base_url(base_url)
        self.model = model
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.retries = retries
        self.backoff_s = backoff_s
        self.decoding = decoding or DecodingSettings()
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        api_key = os.environ.get(api_key_env, "")
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._warned: set[str] = set()

    def describe(self) -> dict[str, Any]:
        """For job.json: what decides the texts (never the key, the timeout, the concurrency, nor the address:
        the same model elsewhere writes the same texts; job.json keeps the address apart, as information)."""
        return {"kind": "server", "model": self.model, "decoding": asdict(self.decoding)}

    def check_reachable(self) -> list[str]:
        """The model ids the server lists (GET {base_url}/models); raises ServerUnreachableError in one line when
        it cannot be reached or does not answer with a model list. A model it does not list is only warned about:
        `transformers serve` loads models on demand and lists only those in its cache."""
        try:
            answer = self._call("GET", "/models", None)
            served = [entry["id"] for entry in answer["data"] if isinstance(entry.get("id"), str)]
        except _Failure as failure:
            raise ServerUnreachableError(f"{self._unreachable}: {failure}") from None
        except (KeyError, TypeError, AttributeError):
            raise ServerUnreachableError(f"{self._unreachable}: GET /models did not answer with a model list") from None
        if self.model not in served:
            logger.warning(
                "the caption-model server at %s does not list model %r (it lists %s)",
                self.base_url,
                self.model,
                ", ".join(map(repr, served[:10])) or "none",
            )
        return served

    @property
    def _unreachable(self) -> str:
        return f"cannot reach the caption-model server at {self.base_url}"

    def generate(self, requests: Sequence[CaptionRequest]) -> list[GeneratedText]:
        """One answer per request, in the same order; up to ``concurrency`` requests in flight."""
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._generate_one, requests))

    def _generate_one(self, request: CaptionRequest) -> GeneratedText:
        body = json.dumps(self._payload(request)).encode("utf-8")
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return GeneratedText(_answer_text(self._call("POST", "/chat/completions", body)))
            except _Failure as failure:
                last = failure
                if not failure.retry:
                    break
        self._warn_once(last)
        return GeneratedText(None, failure=last.kind)

    def _payload(self, request: CaptionRequest) -> dict[str, Any]:
        image_url = "data:image/jpeg;base64," + base64.b64encode(request.image_jpeg).decode("ascii")
        user = [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": request.instruction}]
        system = [{"role": "system", "content": request.system}] if request.system else []
        payload = {
            "model": self.model,
            "messages": [*system, {"role": "user", "content": user}],
            "max_tokens": self.decoding.max_new_tokens,
            "temperature": self.decoding.temperature,
            "seed": request_seed(self.decoding, request),
        }
        if request.response_format is not None:
            payload["response_format"] = dict(request.response_format)
        return payload

    def _call(self, method: str, path: str, body: bytes | None) -> Any:
        """The JSON answer of one HTTP exchange, or a _Failure."""
        http_request = urllib.request.Request(self.base_url + path, data=body, headers=self._headers, method=method)
        deadline = time.monotonic() + self.timeout_s
        try:
            with _OPENER.open(http_request, timeout=self.timeout_s) as response:
                raw = _read_capped(response, deadline)
        except urllib.error.HTTPError as error:
            raise _status_failure(error) from None
        except TimeoutError:
            raise _Failure("timeout", f"no answer within {self.timeout_s:g} s") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise _Failure("timeout", f"no answer within {self.timeout_s:g} s") from None
            reason = error.reason
            raise _Failure("refused", error_line(reason) if isinstance(reason, BaseException) else reason) from None
        except OSError as error:  # refused, reset, or closed before a full answer
            raise _Failure("refused", error_line(error)) from None
        except http.client.HTTPException as error:  # a malformed status line or headers, a truncated body
            raise _Failure("bad_response", f"{type(error).__name__}: {error_line(error)}") from None
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise _Failure("bad_response", f"not JSON: {raw[:80]!r}") from None

    def _warn_once(self, failure: _Failure) -> None:
        """The first failure of each kind, in a log line (a server refusing every request shows why)."""
        if failure.kind not in self._warned:
            self._warned.add(failure.kind)
            logger.warning("caption-model server %s: a request failed (%s): %s", self.base_url, failure.kind, failure)


def _status_failure(error: urllib.error.HTTPError) -> _Failure:
    """An HTTP error status as a failure, with the start of the server's explanation (vLLM says why it refused)."""
    with error:
        try:
            said = " ".join(error.read(200).decode("utf-8", "replace").split())
        except (OSError, http.client.HTTPException):
            said = ""
    reason = f"HTTP {error.code} {error.reason}" + (f": {said}" if said else "")
    if error.code < 400:
        return _Failure("bad_response", reason, retry=False)
    kind = "http_5xx" if error.code >= 500 else "http_4xx"
    return _Failure(kind, reason, retry=kind in RETRIED or error.code in _RETRIED_4XX)


def _read_capped(response: Any, deadline: float) -> bytes:
    """The body, read in chunks, refused past MAX_ANSWER_BYTES or past the deadline (a server trickling bytes
    slower than the timeout)."""
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise _Failure("bad_response", f"an answer of {declared} bytes (more than {MAX_ANSWER_BYTES})")
    chunks, size = [], 0
    while chunk := response.read1(_READ_CHUNK):  # read1: whatever has arrived, so the deadline is checked often
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise _Failure("bad_response", f"an answer of more than {MAX_ANSWER_BYTES} bytes")
        if time.monotonic() > deadline:
            raise _Failure("timeout", "the answer took longer than the timeout to arrive")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer_text(answer: Any) -> str:
    """The text of a chat completion's first choice without surrounding whitespace (as the in-process backend
    gives it), or a bad_response failure for anything else."""
    try:
        text = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Failure("bad_response", "not a chat completion (no choices[0].message.content)") from None
    if not isinstance(text, str):
        raise _Failure("bad_response", f"the message content is {type(text).__name__}, not text")
    return text.strip()
