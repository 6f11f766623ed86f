"""Model providers for the generation loop: Anthropic (the official SDK) and any OpenAI-compatible endpoint.

A provider turns (system prompt, conversation) into a reply with its token use. Retries live here, not in the
SDKs (their own retries are switched off), so every wait is visible, bounded and testable: rate limits (429,
honouring retry-after), overload (529) and other transient server or connection failures are retried with
exponential backoff; everything else is an error at once.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

log = logging.getLogger("mpskernels.generation")

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

# US dollars per million tokens (input, output), from Anthropic's published prices for these models. A model not
# listed (newer ones included) has no cost estimate unless the user gives its prices (--price, or
# GenerationConfig.prices): a wrong guess would be worse than none.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
}


class ProviderError(RuntimeError):
    """A request that failed for good (after retries, or not retryable); the message says which provider and why."""


class MalformedReply(ValueError):
    """A response that is not the API's shape (a broken proxy, a truncated body): retried like a server error."""


@dataclass(frozen=True)
class Message:
    role: str  # "user" or "assistant"
    text: str


@dataclass(frozen=True)
class Reply:
    text: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # requests in all, the first included
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The wait before retry number `attempt` (1-based): the server's retry-after if it gave one, else
        exponential backoff with jitter."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay_s)
        return min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s) * (0.5 + random.random() / 2)


class Provider(Protocol):
    name: str
    model: str

    def complete(self, system: str, messages: list[Message], max_tokens: int) -> Reply: ...


def cost_usd(reply: Reply, prices: dict[str, tuple[float, float]] | None = None) -> float | None:
    """The reply's cost, when the model's prices are known (longest matching model-name prefix)."""
    table = {**PRICES_PER_MTOK, **(prices or {})}
    match = max((k for k in table if reply.model.startswith(k)), key=len, default=None)
    if match is None:
        return None
    per_in, per_out = table[match]
    return (reply.input_tokens * per_in + reply.output_tokens * per_out) / 1e6


def _with_retries(provider: str, policy: RetryPolicy, request: Callable[[], Reply],
                  classify: Callable[[Exception], tuple[bool, float | None, str] | None]) -> Reply:
    """Runs request() until it succeeds, a failure is not retryable, or the attempts are used up.
    classify(e) -> (retryable, retry_after seconds or None, description), or None for exceptions not from the SDK."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return request()
        except Exception as e:
            verdict = classify(e)
            if verdict is None:
                raise
            retryable, retry_after, what = verdict
            if not retryable or attempt == policy.attempts:
                tried = f" after {attempt} attempt(s)" if retryable else ""
                raise ProviderError(f"{provider}: {what}{tried}") from e
            wait = policy.delay(attempt, retry_after)
            log.warning("%s: %s; retrying in %.1f s (attempt %d of %d)", provider, what, wait, attempt + 1,
                        policy.attempts)
            policy.sleep(wait)
    raise AssertionError("unreachable")


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to backoff


def _classify_http(e: Exception, timeout_types: tuple, connection_types: tuple, status_type: type):
    if isinstance(e, MalformedReply):
        return True, None, f"malformed reply ({e})"
    if isinstance(e, timeout_types):
        return True, None, "the request timed out"
    if isinstance(e, connection_types):
        return True, None, f"connection failed ({e})"
    if isinstance(e, status_type):
        status = getattr(e, "status_code", None)
        response = getattr(e, "response", None)
        headers = getattr(response, "headers", None)
        what = {429: "rate limited (429)", 529: "overloaded (529)"}.get(status, f"HTTP {status}: {e}")
        return status in RETRYABLE_STATUS, _retry_after(headers), what
    return None


def _sdk_client(who: str, sdk: str, extra: str, client_class: str, key_env: str, url_env: str,
                api_key: str | None, base_url: str | None, timeout_s: float) -> tuple[Any, Any]:
    """(the SDK module, a client with the SDK's own retries off), or a ProviderError saying what is missing."""
    try:
        module = importlib.import_module(sdk)
    except ImportError:
        raise ProviderError(f"{who}: the {sdk} SDK is not installed; pip install 'mpskernels[{extra}]'") from None
    key = api_key or os.environ.get(key_env)
    if not key:
        raise ProviderError(f"{who}: no API key; set {key_env}")
    client = getattr(module, client_class)(api_key=key, base_url=base_url or os.environ.get(url_env), max_retries=0,
                                           timeout=timeout_s)
    return module, client


class AnthropicProvider:
    """Claude through the official `anthropic` SDK. The key comes from ANTHROPIC_API_KEY (or `api_key`); the base
    URL from `base_url`, else ANTHROPIC_BASE_URL, else the SDK's default."""

    name = "anthropic"

    def __init__(self, model: str, *, api_key: str | None = None, base_url: str | None = None,
                 timeout_s: float = 600.0, retry: RetryPolicy = RetryPolicy(), temperature: float | None = None):
        self._anthropic, self._client = _sdk_client("anthropic", "anthropic", "generate", "Anthropic",
                                                    "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", api_key, base_url,
                                                    timeout_s)
        self.model, self.retry, self.temperature = model, retry, temperature

    def complete(self, system: str, messages: list[Message], max_tokens: int) -> Reply:
        a = self._anthropic
        extra = {} if self.temperature is None else {"temperature": self.temperature}

        def request() -> Reply:
            with _parsing():
                response = self._client.messages.create(
                    model=self.model, max_tokens=max_tokens, system=system,
                    messages=[{"role": m.role, "content": m.text} for m in messages], **extra)
                text = "".join(block.text for block in response.content if block.type == "text")
                usage = response.usage
                return Reply(text, response.model or self.model, int(usage.input_tokens), int(usage.output_tokens),
                             response.stop_reason or "")

        return _with_retries(f"anthropic ({self.model})", self.retry, request, lambda e: _classify_http(
            e, (a.APITimeoutError,), (a.APIConnectionError,), a.APIStatusError))


class OpenAICompatibleProvider:
    """Any endpoint speaking OpenAI's chat completions (other vendors' compatible APIs, local servers), through
    the `openai` SDK (optional extra). The key comes from `api_key` or OPENAI_API_KEY."""

    name = "openai-compatible"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 600.0, retry: RetryPolicy = RetryPolicy(), temperature: float | None = None):
        self._openai, self._client = _sdk_client("openai-compatible", "openai", "openai", "OpenAI", "OPENAI_API_KEY",
                                                 "OPENAI_BASE_URL", api_key, base_url, timeout_s)
        self.model, self.retry, self.temperature = model, retry, temperature

    def complete(self, system: str, messages: list[Message], max_tokens: int) -> Reply:
        o = self._openai
        extra = {} if self.temperature is None else {"temperature": self.temperature}

        def request() -> Reply:
            with _parsing():
                response = self._client.chat.completions.create(
                    model=self.model, max_tokens=max_tokens,
                    messages=[{"role": "system", "content": system}] +
                             [{"role": m.role, "content": m.text} for m in messages], **extra)
                choice = response.choices[0]
                usage = response.usage
                return Reply(choice.message.content or "", response.model or self.model, int(usage.prompt_tokens),
                             int(usage.completion_tokens), choice.finish_reason or "")

        return _with_retries(f"openai-compatible ({self.model})", self.retry, request, lambda e: _classify_http(
            e, (o.APITimeoutError,), (o.APIConnectionError,), o.APIStatusError))


@contextlib.contextmanager
def _parsing() -> Iterator[None]:
    """Turns a response the SDK could not parse, or one missing fields we read, into MalformedReply."""
    try:
        yield
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        if isinstance(e, MalformedReply):
            raise
        raise MalformedReply(f"{type(e).__name__}: {e}") from e


PROVIDERS = {"anthropic": AnthropicProvider, "openai-compatible": OpenAICompatibleProvider}


def make_provider(spec: str, **kwargs: Any) -> Provider:
    """A provider from 'NAME:MODEL' (e.g. 'anthropic:claude-haiku-4-5'); a bare model name means Anthropic."""
    name, _, model = spec.partition(":") if ":" in spec else ("anthropic", "", spec)
    if name not in PROVIDERS:
        raise ProviderError(f"unknown provider {name!r} in {spec!r}; use one of {', '.join(PROVIDERS)}")
    if not model:
        raise ProviderError(f"no model named in {spec!r}; write PROVIDER:MODEL")
    return PROVIDERS[name](model, **kwargs)
