"""Platform overhead of the run endpoint.

Starts `shipyard serve` on the example project (training it first if its model is missing),
creates a caller key, then sends runs at concurrency 1, 8 and 32 and prints, per level:
requests/s, end-to-end p50/p99 as the client sees it, the model's own inference time
(reported by the server for the same requests), and the platform overhead = end-to-end minus
model time, per request ("ovh", which includes the load generator's own cost). "srv mean" is
the mean time the server spent per request by its own HTTP histogram (from /metrics), and
"srv ovh" that mean minus the mean model time: the overhead without the load generator's cost.

    .venv/bin/python bench/overhead.py --project examples/support-desk [--requests 400]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


ROUTE_METRIC = "shipyard_http_request_duration_seconds_{}" + (
    '{{method="POST",route="/v1/tasks/ticket-triage/runs"}}'
)


def server_http_seconds(url: str) -> tuple[float, float]:
    """(sum, count) of the server's own HTTP timing of the run route, from /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = {}
    for part in ("sum", "count"):
        prefix = ROUTE_METRIC.format(part)
        line = next((ln for ln in text.splitlines() if ln.startswith(prefix)), None)
        values[part] = float(line.rsplit(" ", 1)[1]) if line else 0.0
    return values["sum"], values["count"]


def create_key(project: Path, env: dict[str, str]) -> str:
    output = subprocess.run(
        [
            str(BIN / "shipyard"),
            "keys",
            "create",
            "--name",
            "bench",
            "--role",
            "caller",
            "--expires-in",
            "1h",
            "--project",
            str(project),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    match = re.search(r"^(sy_\S+)$", output, re.MULTILINE)
    if not match:
        raise SystemExit(f"could not read the key from: {output}")
    return match.group(1)


async def level(url: str, key: str, texts: list[str], concurrency: int, total: int) -> dict:
    end_to_end: list[float] = []
    model: list[float] = []
    server: list[float] = []
    overhead: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=60, headers={"Authorization": f"Bearer {key}"}
    ) as client:

        async def worker() -> None:
            for index in counter:
                body = {"input": {"text": texts[index % len(texts)]}}
                started = time.perf_counter()
                response = await client.post("/v1/tasks/ticket-triage/runs", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                run = response.json()
                end_to_end.append(elapsed)
                model.append(run["model_latency_ms"])
                server.append(run["latency_ms"])
                overhead.append(elapsed - run["model_latency_ms"])

        for _ in range(min(20, total)):  # warm-up, not counted
            await client.post("/v1/tasks/ticket-triage/runs", json={"input": {"text": texts[0]}})
        before = server_http_seconds(url)
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        after = server_http_seconds(url)
    # Mean time the server itself spent per request (middleware in to response out).
    server_http_ms = (after[0] - before[0]) / max(1.0, after[1] - before[1]) * 1000
    return {
        "concurrency": concurrency,
        "requests": total,
        "rps": total / wall,
        "e2e_p50": percentile(end_to_end, 0.5),
        "e2e_p99": percentile(end_to_end, 0.99),
        "model_p50": percentile(model, 0.5),
        "model_p99": percentile(model, 0.99),
        "server_p50": percentile(server, 0.5),
        "overhead_p50": percentile(overhead, 0.5),
        "overhead_p99": percentile(overhead, 0.99),
        "overhead_mean": statistics.fmean(overhead),
        "server_http_mean": server_http_ms,
        "server_overhead_mean": server_http_ms - statistics.fmean(model),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=Path("examples/support-desk"))
    parser.add_argument("--requests", type=int, default=400, help="per concurrency level")
    parser.add_argument("--levels", default="1,8,32")
    args = parser.parse_args()
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", "SHIPYARD_LOG_LEVEL": "WARNING"}
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "shipyard"), "serve", "--project", str(args.project), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600  # first start may train the model
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit("server exited; run `shipyard serve` by hand to see why")
            time.sleep(0.5)
        key = create_key(args.project, env)
        with (args.project / "data" / "dev.csv").open(newline="") as handle:
            texts = [row["text"] for row in csv.DictReader(handle)]
        print(f"shipyard run endpoint, {os.cpu_count()} cores, {args.requests} requests per level")
        print(
            f"{'conc':>4} {'req/s':>7} {'e2e p50':>8} {'e2e p99':>8} {'model p50':>9} "
            f"{'model p99':>9} {'ovh p50':>8} {'ovh p99':>8} "
            f"{'srv mean':>8} {'srv ovh':>8}   (ms)"
        )
        for concurrency in (int(c) for c in args.levels.split(",")):
            r = asyncio.run(level(url, key, texts, concurrency, args.requests))
            print(
                f"{r['concurrency']:>4} {r['rps']:>7.1f} {r['e2e_p50']:>8.2f} "
                f"{r['e2e_p99']:>8.2f} {r['model_p50']:>9.2f} {r['model_p99']:>9.2f} "
                f"{r['overhead_p50']:>8.2f} {r['overhead_p99']:>8.2f} "
                f"{r['server_http_mean']:>8.2f} {r['server_overhead_mean']:>8.2f}"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
