"""The generation loop end to end: a local fake of the Messages API scripted per test, real verification of every
candidate in a separate process on the emulator, packs written and reused by optimize()."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

import mpskernels
from mpskernels import generate
from mpskernels.generation import GenerationConfig, RetryPolicy, generate_problem
from mpskernels.cli import main as cli_main
from mpskernels.generation.providers import AnthropicProvider
from mpskernels.packs import load_pack
from mpskernels.problem import parse_problem
from mpskernels.verify import VerifyOptions

from . import replies as r
from .conftest import error, reply
from .modules import RowRMS

QUICK = VerifyOptions(seeds=(0,), distributions=("as-given", "normal", "large"))
CONFIG = GenerationConfig(attempts=3, verify=QUICK, timeout_s=120)


def anthropic(fake, model="claude-test"):
    return AnthropicProvider(model, base_url=fake.base_url, retry=RetryPolicy(attempts=3, sleep=lambda s: None))


def run(fake, tmp_path, config=CONFIG, providers=None, events=None):
    problem = parse_problem(r.PROBLEM, name="rms")
    return generate_problem(problem, providers or [anthropic(fake)], tmp_path, config,
                            on_event=(lambda message, attempt: events.append(message)) if events is not None
                            else None)


def user_turns(request) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


def test_a_compile_error_is_fed_back_with_its_line_and_the_fix_is_kept(fake_anthropic, tmp_path):
    fake_anthropic.script = [reply(r.COMPILE_ERROR), reply(r.CORRECT)]
    events = []
    result = run(fake_anthropic, tmp_path, events=events)
    assert [a.stage for a in result.attempts] == ["compile", "ok"]
    feedback = user_turns(fake_anthropic.requests[1])[-1]
    # The semicolon is missing at the end of line 24: clang++ reports that line, g++ the next token's (line 25).
    assert feedback.startswith("The Metal source does not compile")
    assert re.search(r"kernel\.metal:2[45]:", feedback), feedback
    assert "/tmp/" not in feedback  # names the model's file, not ours
    # The second request carries the whole conversation: prompt, first answer, feedback.
    assert [m["role"] for m in fake_anthropic.requests[1]["messages"]] == ["user", "assistant", "user"]
    pack = load_pack(tmp_path / "rms" / "pack")
    assert pack.source == r.KERNEL and result.pack.path == pack.path
    assert pack.provenance["attempt"] == 2 and pack.provenance["model"] == "claude-test"
    assert len(pack.provenance["prompt_sha256"]) == 64
    assert pack.verification["timing"] == "not timed: no Apple GPU on this machine"
    assert pack.verification["verdict"]["correct"] is True and pack.verification["sizes"]["dim"] == 48
    # The declaration claims float16 too: it was verified in float16 as well.
    assert pack.verification["verdict"]["dtypes"]["float16"]["correct"] is True
    assert any("attempt 1: compile failed" in e for e in events) and "kept" in events[-1]


def test_wrong_numerics_are_fed_back_with_the_first_mismatch(fake_anthropic, tmp_path):
    fake_anthropic.script = [reply(r.WRONG_NUMERICS), reply(r.CORRECT)]
    result = run(fake_anthropic, tmp_path)
    assert [a.stage for a in result.attempts] == ["verification", "ok"]
    feedback = user_turns(fake_anthropic.requests[1])[-1]
    assert feedback.startswith("The kernel compiled but is not correct")
    assert "first at index (0, " in feedback and "expected" in feedback


def test_a_cheating_candidate_is_rejected_and_no_pack_is_kept(fake_anthropic, tmp_path):
    fake_anthropic.script = [reply(r.HARD_CODED_SIZE)] * 3
    result = run(fake_anthropic, tmp_path)
    assert result.pack is None and [a.stage for a in result.attempts] == ["verification"] * 3
    assert "held-out" in result.attempts[0].detail
    assert not (tmp_path / "rms" / "pack").exists()
    session = json.loads((tmp_path / "rms" / "session.json").read_text())
    assert session["winner"] is None and len(session["attempts"]) == 3


@pytest.mark.parametrize("text, stage, says", [
    (r.NO_CODE, "reply", "no ```metal code block found"),
    (r.BAD_JSON, "reply", "is not valid JSON"),
    (r.BAD_DECLARATION, "declaration", "launches[0].threads[0]: formula"),
    (r.ESCAPES_THE_SANDBOX, "source", "kernel.metal:1: 'extern' is not allowed"),
    pytest.param(r.MIXES_ADDRESS_SPACES, "compile", "Apple's compiler would reject this (address spaces)",
                 marks=pytest.mark.skipif(shutil.which("clang++") is None, reason="needs clang++ (CI installs it)")),
])
def test_a_malformed_reply_is_explained_and_the_model_tries_again(fake_anthropic, tmp_path, text, stage, says):
    fake_anthropic.script = [reply(text), reply(r.CORRECT)]
    result = run(fake_anthropic, tmp_path)
    assert [a.stage for a in result.attempts] == [stage, "ok"]
    assert says in user_turns(fake_anthropic.requests[1])[-1]


def test_a_dtype_the_declaration_claims_but_the_source_lacks_is_a_compile_error(fake_anthropic, tmp_path):
    claims_bfloat16 = r.answer(declaration={**r.DECLARATION, "dtypes": ["float32", "bfloat16"]})
    fake_anthropic.script = [reply(claims_bfloat16), reply(r.CORRECT)]
    result = run(fake_anthropic, tmp_path)
    assert [a.stage for a in result.attempts] == ["compile", "ok"]
    assert "launches row_rms_bfloat16, which the source does not define" in result.attempts[0].detail


def test_a_hanging_kernel_times_out_and_the_loop_goes_on(fake_anthropic, tmp_path):
    fake_anthropic.script = [reply(r.HANGS), reply(r.CORRECT)]
    config = GenerationConfig(attempts=2, verify=QUICK, timeout_s=25)
    result = run(fake_anthropic, tmp_path, config)
    assert [a.stage for a in result.attempts] == ["timeout", "ok"]
    assert "did not finish within 25 s" in user_turns(fake_anthropic.requests[1])[-1]


def test_rate_limits_and_overload_are_retried_inside_the_loop(fake_anthropic, tmp_path):
    fake_anthropic.script = [error(429, "rate_limit_error", retry_after="0"), error(529, "overloaded_error"),
                             reply(r.CORRECT, model="claude-haiku-4-5", input_tokens=2_000_000,
                                   output_tokens=100_000)]
    result = run(fake_anthropic, tmp_path, providers=[anthropic(fake_anthropic, model="claude-haiku-4-5")])
    assert [a.stage for a in result.attempts] == ["ok"] and len(fake_anthropic.requests) == 3
    assert result.cost_usd == pytest.approx(2 * 1.0 + 0.1 * 5.0)


def test_a_swarm_keeps_the_first_correct_kernel_when_nothing_can_be_timed(fake_anthropic, tmp_path):
    failing = AnthropicProvider("claude-failing", base_url=fake_anthropic.base_url,
                                retry=RetryPolicy(attempts=1, sleep=lambda s: None))
    # Lanes run concurrently; whichever asks first gets the 400 and gives up, the other gets the kernel.
    fake_anthropic.script = [error(400, "invalid_request_error"), reply(r.CORRECT)]
    result = run(fake_anthropic, tmp_path, config=GenerationConfig(attempts=2, samples=1, verify=QUICK),
                 providers=[failing, anthropic(fake_anthropic)])
    stages = sorted(a.stage for a in result.attempts)
    assert stages == ["ok", "provider"] and result.winner.stage == "ok"
    assert "HTTP 400" in next(a.detail for a in result.attempts if a.stage == "provider")


def test_generate_for_a_module_class_and_optimize_with_the_pack(fake_anthropic, tmp_path):
    fake_anthropic.script = [reply(r.CORRECT)]
    x = torch.randn(3, 40)
    result = generate(RowRMS, init_args=(40,), example_inputs=(x,), models=[anthropic(fake_anthropic)],
                      out_dir=tmp_path, config=CONFIG)
    assert result.pack is not None and result.pack.module_class == "generate.modules.RowRMS"
    prompt = fake_anthropic.requests[0]["messages"][0]["content"]
    assert "class RowRMS(nn.Module)" in prompt and "inputs of shapes (3, 40)" in prompt
    model = torch.nn.Sequential(RowRMS(40), torch.nn.Linear(40, 8)).eval()
    want = model(x)
    with mpskernels.use_backend("emulator"):
        mpskernels.optimize(model, example_inputs=(x,), kernel_packs=[result.pack.path])
        assert model.mpskernels_report.entries[0].kernel == "pack:RowRMS"
        torch.testing.assert_close(model(x), want)


def test_a_module_class_in_main_is_refused_with_the_way_out(tmp_path):
    class Local(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match="must be importable .* or write a KernelBench problem file"):
        generate(Local, (), (), models=["anthropic:x"], out_dir=tmp_path)


def test_the_command_line_writes_a_pack_and_reports(fake_anthropic, tmp_path, capsys):
    problem = tmp_path / "rms.py"
    problem.write_text(r.PROBLEM)
    fake_anthropic.script = [reply(r.WRONG_NUMERICS), reply(r.CORRECT)]
    code = cli_main(["generate", str(problem), "--model", "anthropic:claude-test", "--base-url",
                                fake_anthropic.base_url, "--out", str(tmp_path / "packs"), "--quick",
                                "--price", "claude-test=1,2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "attempt 1: verification failed" in out and "attempt 2: correct" in out and "$0.004" in out
    assert (tmp_path / "packs" / "rms" / "pack" / "pack.json").exists()


@pytest.mark.parametrize("argv, message", [
    (["generate", "/no/such/problem.py", "--model", "anthropic:m"], "cannot read problem file"),
    (["generate", "PROBLEM"], "name a model with --model"),
    (["generate", "PROBLEM", "--model", "anthropic:m", "--price", "m=cheap"], "write MODEL=IN,OUT"),
])
def test_command_line_errors_are_clear(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MPSKERNELS_MODEL", raising=False)
    problem = tmp_path / "rms.py"
    problem.write_text(r.PROBLEM)
    code = cli_main([str(problem) if a == "PROBLEM" else a for a in argv])
    assert code == 2 and message in capsys.readouterr().err
