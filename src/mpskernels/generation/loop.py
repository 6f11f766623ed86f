"""The generation loop: ask a model for a kernel, verify it in a separate process, feed back what failed, repeat;
several models or samples ("lanes") at once; keep the best correct candidate as a kernel pack.

Without an Apple GPU nothing can be timed: the first correct candidate wins and is marked "not timed", and the
other lanes stop. On a Mac every lane runs its attempts, correct candidates are timed against the faster of eager
and torch.compile, and the fastest wins; a candidate more than 10x faster than the baseline is flagged for review.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..packs import KernelPack, parse_declaration
from ..problem import Problem, scaled_sizes
from ..verify import VerifyOptions
from .prompt import Prompt, build_prompt, feedback_message
from .providers import Message, Provider, ProviderError, Reply, cost_usd
from .reply import ReplyError, parse_reply
from .worker import VerifyOutcome, VerifyRequest, verify_in_subprocess

REVIEW_SPEEDUP = 10.0  # speedups above this are flagged for a person to check (see the verification rules)
NOT_TIMED = "not timed: no Apple GPU on this machine"


@dataclass(frozen=True)
class GenerationConfig:
    attempts: int = 5  # per lane
    samples: int = 1  # lanes per provider
    max_tokens: int = 16000
    emulator_budget: int = 1 << 16  # elements (inputs + parameters) for verification on the emulator
    timeout_s: float = 300.0  # per verification
    memory_limit_bytes: int | None = 16 << 30
    verify: VerifyOptions = field(default_factory=VerifyOptions)
    cuda_reference: str | None = None
    profile: str | None = None
    prices: dict[str, tuple[float, float]] | None = None
    backend: str = "emulator"  # "metal" verifies (and times) on a Mac's GPU


@dataclass
class Attempt:
    lane: int
    provider: str
    model: str
    number: int
    stage: str  # "provider", "reply", or a VerifyOutcome stage
    detail: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0
    timing: dict[str, Any] | None = None
    candidate: Any = None  # (source, declaration JSON) of a reply that could be read
    verdict: dict[str, Any] | None = None
    finished_at: float = 0.0

    @property
    def correct(self) -> bool:
        return self.stage == "ok"

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("candidate")
        return data


@dataclass
class GenerationResult:
    problem: str
    attempts: list[Attempt]
    pack: KernelPack | None = None
    winner: Attempt | None = None
    flagged_for_review: bool = False

    @property
    def input_tokens(self) -> int:
        return sum(a.input_tokens for a in self.attempts)

    @property
    def output_tokens(self) -> int:
        return sum(a.output_tokens for a in self.attempts)

    @property
    def cost_usd(self) -> float | None:
        costs = [a.cost_usd for a in self.attempts if a.input_tokens or a.output_tokens]
        return None if not costs or any(c is None for c in costs) else sum(costs)


Events = Callable[[str, Attempt | None], None]  # (message, the attempt it is about) for progress displays


def run_generation(problem: Problem, module_class: str, providers: list[Provider], out_dir: str | Path,
                   config: GenerationConfig = GenerationConfig(), on_event: Events | None = None,
                   shown_source: str | None = None) -> GenerationResult:
    """Runs every lane (each provider x config.samples) and saves the winner as a pack in out_dir/<problem>.
    `shown_source` is the module source the model sees (default: the problem file)."""
    timed = config.backend == "metal"
    sizes = {} if timed else scaled_sizes(problem, config.emulator_budget)
    prompt = build_prompt(shown_source or problem.source, {**problem.constants, **sizes},
                          cuda_reference=config.cuda_reference, profile=config.profile)
    lanes = [p for p in providers for _ in range(config.samples)]
    stop = threading.Event()
    attempts: list[Attempt] = []
    lock = threading.Lock()
    notify = on_event or (lambda message, attempt: None)

    def record(attempt: Attempt) -> None:
        with lock:
            attempts.append(attempt)
        notify(_describe(attempt), attempt)
        if attempt.correct and not timed:
            stop.set()  # nothing to compare speeds with: the first correct candidate wins

    def lane(index: int, provider: Provider) -> None:
        _run_lane(index, provider, problem, module_class, prompt, sizes, config, timed, stop, record)

    notify(f"{problem.name}: {len(lanes)} lane(s) x {config.attempts} attempt(s); verification on "
           f"{config.backend}" + (f" at {sizes}" if sizes else ""), None)
    with ThreadPoolExecutor(max_workers=max(1, len(lanes))) as pool:
        for future in [pool.submit(lane, i, p) for i, p in enumerate(lanes)]:
            future.result()
    result = GenerationResult(problem.name, sorted(attempts, key=lambda a: (a.lane, a.number)))
    result.winner = _best(attempts, timed)
    out = Path(out_dir) / problem.name
    if result.winner is not None:
        result.pack, result.flagged_for_review = _save_pack(result.winner, problem, module_class, prompt, sizes,
                                                            config, out)
    _save_session(result, prompt, out)
    notify(_conclusion(result, out), result.winner)
    return result


def _run_lane(index: int, provider: Provider, problem: Problem, module_class: str, prompt: Prompt,
              sizes: dict[str, int], config: GenerationConfig, timed: bool, stop: threading.Event,
              record: Callable[[Attempt], None]) -> None:
    messages = [Message("user", prompt.first_message)]
    for number in range(1, config.attempts + 1):
        if stop.is_set():
            return
        started = time.monotonic()
        attempt = Attempt(index, provider.name, provider.model, number, "provider", "")
        try:
            reply = provider.complete(prompt.system, messages, config.max_tokens)
        except ProviderError as e:
            attempt.detail, attempt.seconds, attempt.finished_at = str(e), time.monotonic() - started, time.time()
            record(attempt)
            return  # retries are spent or the request cannot succeed: this lane is done
        _count_tokens(attempt, reply, config)
        messages.append(Message("assistant", reply.text))
        outcome = _check_reply(reply, problem, module_class, sizes, config, timed, attempt)
        attempt.stage, attempt.detail = outcome.stage, outcome.detail
        attempt.verdict, attempt.timing = outcome.verdict, outcome.timing
        attempt.seconds, attempt.finished_at = time.monotonic() - started, time.time()
        record(attempt)
        if attempt.correct and not timed:
            return
        if attempt.correct:
            speedup = outcome.timing["speedup"]
            detail = (f"correct, {speedup:.2f}x the baseline" +
                      ("; make it faster" if speedup < 1 else "; try for more speed with the same correctness"))
            messages.append(Message("user", feedback_message("slower" if speedup < 1 else "timing", detail,
                                                             _timing_text(outcome.timing))))
        else:
            messages.append(Message("user", feedback_message(outcome.stage, outcome.detail)))


def _check_reply(reply: Reply, problem: Problem, module_class: str, sizes: dict[str, int],
                 config: GenerationConfig, timed: bool, attempt: Attempt) -> VerifyOutcome:
    try:
        candidate = parse_reply(reply.text)
    except ReplyError as e:
        if reply.stop_reason == "max_tokens":
            return VerifyOutcome("reply", f"{e} (the reply was cut off at the token limit; be more concise)")
        return VerifyOutcome("reply", str(e))
    attempt.candidate = (candidate.source, candidate.declaration)
    request = VerifyRequest(problem.source, problem.name, module_class, candidate.source, candidate.declaration,
                            sizes, config.verify, config.backend, time_it=timed)
    return verify_in_subprocess(request, config.timeout_s, config.memory_limit_bytes)


def _count_tokens(attempt: Attempt, reply: Reply, config: GenerationConfig) -> None:
    attempt.model = reply.model or attempt.model
    attempt.input_tokens, attempt.output_tokens = reply.input_tokens, reply.output_tokens
    attempt.cost_usd = cost_usd(reply, config.prices)


def _best(attempts: list[Attempt], timed: bool) -> Attempt | None:
    correct = [a for a in attempts if a.correct]
    if not correct:
        return None
    if timed:
        return max(correct, key=lambda a: a.timing["speedup"])
    return min(correct, key=lambda a: a.finished_at)


def _save_pack(winner: Attempt, problem: Problem, module_class: str, prompt: Prompt, sizes: dict[str, int],
               config: GenerationConfig, out: Path) -> tuple[KernelPack, bool]:
    source, declaration = winner.candidate
    speedup = winner.timing["speedup"] if winner.timing else None
    flagged = speedup is not None and speedup > REVIEW_SPEEDUP
    provenance = {
        "provider": winner.provider, "model": winner.model, "lane": winner.lane, "attempt": winner.number,
        "prompt_sha256": prompt.sha256, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "mpskernels": __version__, "input_tokens": winner.input_tokens, "output_tokens": winner.output_tokens,
    }
    verification = {
        "backend": config.backend, "sizes": {**problem.constants, **sizes}, "verdict": winner.verdict,
        "timing": winner.timing or NOT_TIMED, "flagged_for_review": flagged,
    }
    from ..packs.pack import sha256

    pack = KernelPack(problem.name, source, parse_declaration(declaration), module_class, problem.name,
                      sha256(problem.source), provenance, verification)
    return pack.save(out / "pack"), flagged


def _save_session(result: GenerationResult, prompt: Prompt, out: Path) -> None:
    """Every attempt (without candidate sources) and the prompt, for review: out/session.json."""
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "problem": result.problem, "prompt_sha256": prompt.sha256, "system": prompt.system,
        "first_message": prompt.first_message, "attempts": [a.summary() for a in result.attempts],
        "winner": result.winner.summary() if result.winner else None, "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens, "cost_usd": result.cost_usd,
    }
    (out / "session.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def _timing_text(timing: dict[str, Any] | None) -> str:
    if not timing:
        return ""
    parts = [f"{k[:-3]} {v:.4g} ms" for k, v in timing.items() if k.endswith("_ms")]
    return ", ".join(parts) + f"; speedup {timing['speedup']:.2f}x"


def _describe(a: Attempt) -> str:
    head = f"lane {a.lane} ({a.provider}:{a.model}) attempt {a.number}"
    tokens = f" [{a.input_tokens}+{a.output_tokens} tokens" + (f", ${a.cost_usd:.3f}]" if a.cost_usd is not None
                                                               else "]")
    if a.correct:
        return head + ": correct" + (f", {_timing_text(a.timing)}" if a.timing else f" ({NOT_TIMED})") + tokens
    first_line = a.detail.strip().splitlines()[0] if a.detail.strip() else ""
    return f"{head}: {a.stage} failed: {first_line}" + tokens


def _conclusion(result: GenerationResult, out: Path) -> str:
    cost = f", ${result.cost_usd:.3f}" if result.cost_usd is not None else ""
    spent = f"{len(result.attempts)} attempt(s), {result.input_tokens}+{result.output_tokens} tokens{cost}"
    if result.pack is None:
        return f"{result.problem}: no correct kernel ({spent}); attempts in {_shown(out / 'session.json')}"
    flag = " — FLAGGED FOR REVIEW: more than 10x faster than the baseline" if result.flagged_for_review else ""
    return f"{result.problem}: kept {_shown(result.pack.path)} from {_describe(result.winner)} ({spent}){flag}"


def _shown(path: Path) -> Path:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd())
    except ValueError:
        return Path(path)
