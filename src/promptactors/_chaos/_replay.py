"""Replaying one seed of a sweep in a new Python process, for the ``reproducible`` check.

A seed's run must be a function of the seed and its parameters: the same trace hash later
in this process (after other seeds ran) and in a new process (another ``PYTHONHASHSEED``,
no module state). The new process is started with ``PYTHONHASHSEED=random`` on purpose,
so that an order that depends on the hashing of strings shows up as a mismatch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

__all__ = ["cli_arguments", "replay_in_new_process"]

#: The options of a simulated seed that the ``chaos`` command line takes, by flag.
_FLAGS = {"fault_rate": "--fault-rate", "bound": "--bound"}
#: Their defaults (``run_chaos``'s): a default is left out of a reproduce line.
_DEFAULTS = {"fault_rate": 0.5, "bound": 20.0}

_CHILD = (
    "import json, sys\n"
    "import structlog\n"
    "structlog.configure(logger_factory=structlog.ReturnLoggerFactory())\n"
    "from promptactors._chaos._simulate import simulate_seed\n"
    "spec = json.loads(sys.argv[1])\n"
    "report = simulate_seed(spec['seed'], instances=spec['instances'],"
    " faults=spec['faults'], **spec['options'])\n"
    "print(json.dumps({'trace_hash': report.trace_hash}))\n"
)


def cli_arguments(options: dict[str, Any]) -> list[str] | None:
    """The ``chaos`` flags for ``options`` (defaults left out), or None when an option has
    no flag (such a run cannot be reproduced from the command line)."""
    arguments: list[str] = []
    for name, value in options.items():
        if name not in _FLAGS:
            return None
        if value != _DEFAULTS[name]:
            arguments += [_FLAGS[name], str(value)]
    return arguments


def replay_in_new_process(
    seed: int,
    *,
    instances: int,
    faults: str | list[str] | None,
    options: dict[str, Any],
    timeout: float,
) -> str:
    """The trace hash of ``seed`` simulated in a new Python process (``timeout`` seconds
    at most). Raises ``RuntimeError`` if the process fails or times out, ``TypeError``
    if the options are not JSON."""
    spec = json.dumps({"seed": seed, "instances": instances, "faults": faults, "options": options})
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, spec],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"replaying seed {seed} in a new process failed: {exc}") from exc
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RuntimeError(
            f"replaying seed {seed} in a new process exited {done.returncode}: {tail[0]}"
        )
    try:
        return str(json.loads(done.stdout.strip().splitlines()[-1])["trace_hash"])
    except (ValueError, KeyError, IndexError) as exc:
        raise RuntimeError(f"replaying seed {seed}: unexpected output {done.stdout!r}") from exc
