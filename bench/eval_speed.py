"""Cases per second of `shipyard eval` on the BANKING77 dev split (1,003 cases).

cold: a new `shipyard eval` process, wall time including start-up and model load.
warm: the same evaluation again in one process whose model is already loaded.

    .venv/bin/python bench/eval_speed.py --project examples/support-desk
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, default=Path("examples/support-desk"))
    parser.add_argument("--task", default="ticket-triage")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1"}
    shipyard = str(BIN / "shipyard")
    subprocess.run(
        [shipyard, "train", "--if-missing", "--project", str(args.project)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )

    from shipyard.bootstrap import build
    from shipyard.settings import Settings

    # Work on a copy of the project's state, so the benchmark's evaluations never become
    # the project's stored history or its regression baseline.
    state = Path(tempfile.mkdtemp(prefix="eval-bench-")) / "state"
    shutil.copytree(args.project / ".shipyard", state)
    env["SHIPYARD_DATA_DIR"] = str(state)
    container = build(Settings(project_dir=args.project, data_dir=state))
    spec = container.project.tasks[args.task]
    assert spec.evaluation is not None
    rows = sum(1 for _ in container.project.path(spec.evaluation.dataset.path).open()) - 1

    cold = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [shipyard, "eval", args.task, "--project", str(args.project)],
            check=False,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        if done.returncode not in (0, 1):  # 1 is a failed gate: the evaluation still ran
            raise SystemExit(f"shipyard eval exited {done.returncode}")
        cold.append(rows / (time.perf_counter() - started))

    container.evaluations.evaluate(args.task, actor="bench")  # loads the model
    warm = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        container.evaluations.evaluate(args.task, actor="bench")
        warm.append(rows / (time.perf_counter() - started))
    container.close()
    shutil.rmtree(state.parent, ignore_errors=True)
    print(f"shipyard eval {args.task}: {rows} cases, {os.cpu_count()} cores, best of {args.repeat}")
    print(f"  cold (new process, includes start-up and model load): {max(cold):7.1f} cases/s")
    print(f"  warm (model loaded, batches of 64):                   {max(warm):7.1f} cases/s")


if __name__ == "__main__":
    main()
