"""Providers against a local fake of the Messages API: replies, token use, cost, retries and failures."""

from __future__ import annotations

import time

import pytest

from mpskernels.generation.providers import (AnthropicProvider, Message, ProviderError, Reply, RetryPolicy, cost_usd,
                                           make_provider)

from .conftest import Scripted, error, reply


class Sleeps:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


def provider(fake, sleeps, **kwargs):
    return AnthropicProvider("claude-haiku-4-5", base_url=fake.base_url,
                             retry=RetryPolicy(attempts=3, base_delay_s=0.5, sleep=sleeps), **kwargs)


def ask(p):
    return p.complete("be brief", [Message("user", "hello")], max_tokens=64)


def test_a_reply_carries_text_and_token_use(fake_anthropic, sleeps):
    fake_anthropic.script = [reply("hi there", input_tokens=1200, output_tokens=300)]
    answer = ask(provider(fake_anthropic, sleeps))
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("hi there", 1200, 300)
    sent = fake_anthropic.requests[0]
    assert sent["model"] == "claude-haiku-4-5" and sent["system"] == "be brief" and sent["max_tokens"] == 64
    assert sent["messages"] == [{"role": "user", "content": "hello"}]
    sent_headers = fake_anthropic.headers[0]  # SDK versions send the key as x-api-key or as a bearer token
    assert "test-key" in sent_headers.get("x-api-key", "") + sent_headers.get("authorization", "")
    assert sleeps.waits == []


def test_cost_is_computed_from_the_price_table():
    assert cost_usd(Reply("", "claude-haiku-4-5-20251001", 1_000_000, 100_000)) == pytest.approx(1.0 + 0.5)
    assert cost_usd(Reply("", "some-other-model", 10, 10)) is None
    assert cost_usd(Reply("", "some-other-model", 10**6, 0), {"some-other": (2.0, 4.0)}) == pytest.approx(2.0)


def test_a_rate_limit_is_retried_after_the_servers_retry_after(fake_anthropic, sleeps):
    fake_anthropic.script = [error(429, "rate_limit_error", retry_after="7"), reply("ok")]
    assert ask(provider(fake_anthropic, sleeps)).text == "ok"
    assert sleeps.waits == [7.0] and len(fake_anthropic.requests) == 2


def test_overload_is_retried_with_backoff(fake_anthropic, sleeps):
    fake_anthropic.script = [error(529, "overloaded_error"), error(529, "overloaded_error"), reply("ok")]
    assert ask(provider(fake_anthropic, sleeps)).text == "ok"
    assert len(sleeps.waits) == 2 and 0.25 <= sleeps.waits[0] <= 0.5 and 0.5 <= sleeps.waits[1] <= 1.0


def test_retries_end_with_an_error_that_says_how_often_it_tried(fake_anthropic, sleeps):
    fake_anthropic.script = [error(529, "overloaded_error")] * 3
    with pytest.raises(ProviderError, match=r"anthropic \(claude-haiku-4-5\): overloaded \(529\) after 3 attempt"):
        ask(provider(fake_anthropic, sleeps))


def test_a_bad_request_is_not_retried(fake_anthropic, sleeps):
    fake_anthropic.script = [error(400, "invalid_request_error"), reply("never sent")]
    with pytest.raises(ProviderError, match="HTTP 400"):
        ask(provider(fake_anthropic, sleeps))
    assert len(fake_anthropic.requests) == 1 and sleeps.waits == []


def test_a_malformed_response_is_retried_then_reported(fake_anthropic, sleeps):
    fake_anthropic.script = [Scripted("this is not json", raw=True), reply("ok")]
    assert ask(provider(fake_anthropic, sleeps)).text == "ok"
    fake_anthropic.script = [Scripted({"id": "x", "type": "message"})] * 3  # JSON, but no content or usage
    with pytest.raises(ProviderError, match="malformed reply"):
        ask(provider(fake_anthropic, sleeps))


def test_a_timeout_is_retried(fake_anthropic, sleeps):
    fake_anthropic.script = [Scripted({"slow": True}, delay_s=1.0), reply("ok")]

    def wait_for_the_slow_answer_to_end(seconds: float) -> None:  # the fake server answers one request at a time
        sleeps(seconds)
        time.sleep(1.0)

    slow = AnthropicProvider("claude-haiku-4-5", base_url=fake_anthropic.base_url, timeout_s=0.4,
                             retry=RetryPolicy(attempts=2, sleep=wait_for_the_slow_answer_to_end))
    assert ask(slow).text == "ok"
    assert len(sleeps.waits) == 1


def test_no_api_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="no API key; set ANTHROPIC_API_KEY"):
        AnthropicProvider("claude-haiku-4-5")


@pytest.mark.parametrize("spec, message", [
    ("nope:model", "unknown provider 'nope'"), ("anthropic:", "no model named"),
])
def test_provider_specs_are_checked(spec, message, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    with pytest.raises(ProviderError, match=message):
        make_provider(spec)


def test_a_bare_model_name_means_anthropic(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    p = make_provider("claude-haiku-4-5")
    assert (p.name, p.model) == ("anthropic", "claude-haiku-4-5")


def test_the_openai_compatible_provider_speaks_chat_completions(httpserver, monkeypatch, sleeps):
    openai = pytest.importorskip("openai")  # the optional extra; dev installs it
    del openai
    from mpskernels.generation.providers import OpenAICompatibleProvider

    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    body = {"id": "c1", "object": "chat.completion", "created": 0, "model": "local-model",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}
    httpserver.expect_ordered_request("/v1/chat/completions", method="POST").respond_with_json(
        {"error": {"message": "slow down", "type": "rate_limit"}}, status=429, headers={"retry-after": "2"})
    httpserver.expect_ordered_request("/v1/chat/completions", method="POST").respond_with_json(body)
    p = OpenAICompatibleProvider("local-model", base_url=httpserver.url_for("/v1"),
                                 retry=RetryPolicy(attempts=2, sleep=sleeps))
    answer = ask(p)
    assert (answer.text, answer.input_tokens, answer.output_tokens) == ("hi", 11, 3)
    assert sleeps.waits == [2.0]
