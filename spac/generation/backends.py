"""Which text generator the caption-model stage uses: an OpenAI-compatible server, or a model in this process.

A :class:`Backend` is the choice as plain settings: small and picklable, so a Beam handler carries it to the
workers and opens it there, while the launcher describes it for job.json (and checks that a server answers)
without loading any model. The synthesis job and ``spac caption`` both choose through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spac.generation.requests import DecodingSettings, TextGenerator
from spac.generation.server import DEFAULT_API_KEY_ENV, OpenAIServerGenerator

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_CONCURRENCY = 8
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class Backend:
    """``model`` served at ``server`` (a base URL such as http://host:8000/v1), or, without a server, a hub name
    or local folder loaded in this process on ``device``, ``batch_size`` requests per forward pass."""

    model: str
    server: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    timeout_s: float = DEFAULT_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    device: str = "cpu"
    batch_size: int = DEFAULT_BATCH_SIZE
    decoding: DecodingSettings = field(default_factory=DecodingSettings)

    def _client(self) -> OpenAIServerGenerator:
        """The server client (checks the URL, opens no connection)."""
        return OpenAIServerGenerator(
            self.server or "",
            self.model,
            api_key_env=self.api_key_env,
            timeout_s=self.timeout_s,
            concurrency=self.concurrency,
            decoding=self.decoding,
        )

    def describe(self) -> dict[str, Any]:
        """What the generator's describe() will say, without loading a model: for job.json."""
        if self.server is not None:
            return self._client().describe()
        from spac.generation.in_process import describe_model  # torch and transformers: only for this backend

        return describe_model(self.model, self.decoding)

    def check_reachable(self, loaded_here: bool = True) -> None:
        """Before any work: a server that cannot be reached, or a model in process whose config and processor do
        not load (:func:`spac.generation.in_process.check_model`), is an InputError in one line. ``loaded_here``
        False: remote workers load the model, and a folder this machine lacks may be theirs (in their image)."""
        if self.server is not None:
            self._client().check_reachable()
        elif loaded_here or Path(self.model).exists():
            from spac.generation.in_process import check_model  # torch and transformers: only for this backend

            check_model(self.model)

    def open(self) -> TextGenerator:
        """The generator itself (loads an in-process model)."""
        if self.server is not None:
            return self._client()
        from spac.generation.in_process import InProcessGenerator

        return InProcessGenerator(self.model, self.device, self.decoding, self.batch_size)
