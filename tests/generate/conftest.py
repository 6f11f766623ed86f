"""A local stand-in for the Anthropic Messages API (the subset the SDK uses), scripted per test. No test calls a
real API."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response


def message(text: str, model: str = "claude-test", input_tokens: int = 1000, output_tokens: int = 500,
            stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


@dataclass
class Scripted:
    """One scripted answer: a JSON body with a status, optional headers, an optional delay, or a raw body."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    raw: bool = False


def reply(text: str, **kwargs: Any) -> Scripted:
    return Scripted(message(text, **kwargs))


def error(status: int, kind: str, retry_after: str | None = None) -> Scripted:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return Scripted({"type": "error", "error": {"type": kind, "message": f"scripted {kind}"}}, status, headers)


class FakeAnthropic:
    def __init__(self, server):
        self.server = server
        self.script: list[Scripted] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        server.expect_request("/v1/messages", method="POST").respond_with_handler(self._answer)

    @property
    def base_url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def _answer(self, request: Request) -> Response:
        self.requests.append(json.loads(request.data))
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if not self.script:
            return Response(json.dumps({"type": "error", "error": {"type": "api_error", "message": "script ended"}}),
                            status=500, content_type="application/json")
        step = self.script.pop(0)
        if step.delay_s:
            time.sleep(step.delay_s)
        body = step.body if step.raw else json.dumps(step.body)
        return Response(body, status=step.status, headers=step.headers, content_type="application/json")


@pytest.fixture
def fake_anthropic(httpserver, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    return FakeAnthropic(httpserver)
