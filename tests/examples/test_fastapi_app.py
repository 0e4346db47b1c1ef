"""The FastAPI example (examples/fastapi_app/app.py): the runtime opens in the app's
lifespan on the server's loop and a turn reaches the client as server-sent events.

In process through ``httpx.ASGITransport`` on trio and asyncio, and against a real uvicorn
server on 127.0.0.1 in a subprocess (bounded in time, stopped by its PID).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from promptactors import RuntimeSettings
from promptactors.store import open_store

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app"
SERVER_START_TIMEOUT = 30
REQUEST_TIMEOUT = 30


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", APP_DIR / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, data)`` of each server-sent event, in order (``message`` unnamed)."""
    events = []
    for block in body.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def assert_one_streamed_turn(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Chunk events, then one result event whose text is the chunks joined; the result."""
    *chunks, (last, result) = events
    assert last == "result", events
    assert len(chunks) > 1, "expected the answer in several chunks"
    assert {name for name, _ in chunks} == {"message"}
    assert "".join(data["text"] for _, data in chunks) == result["text"]
    assert result["output_tokens"] == 20
    assert result["run_id"]
    return result


async def read_run(database_url: str, run_id: str) -> Any:
    async with await open_store(database_url) as store:
        return await store.get_run(run_id)


@pytest.mark.anyio
async def test_a_turn_streams_as_server_sent_events_in_process(tmp_path: Path) -> None:
    """Through the app's lifespan and ASGI: chunks in order, the result, the run stored."""
    database_url = f"sqlite:///{tmp_path}/app.db"
    settings = RuntimeSettings(
        database_url=database_url, simulated_tokens=20, simulated_latency=0.002
    )
    app = _load_example().create_app(settings)
    with anyio.fail_after(REQUEST_TIMEOUT):
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                response = await client.get("/greet", params={"who": "Ada"})
                assert (await client.get("/")).status_code == 200
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    result = assert_one_streamed_turn(parse_events(response.text))
    run = await read_run(database_url, result["run_id"])
    assert run.messages[-1]["content"] == result["text"]
    assert run.status == "completed"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """uvicorn serving the example on a free port; its base URL and database URL."""
    port = _free_port()
    database_url = f"sqlite:///{tmp_path}/server.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROMPTACTORS_")},
        "PROMPTACTORS_DATABASE_URL": database_url,
        "PROMPTACTORS_SIMULATED_TOKENS": "20",
        "PROMPTACTORS_SIMULATED_LATENCY": "0.01",
    }
    command = [sys.executable, "-m", "uvicorn", "app:app", "--app-dir", str(APP_DIR)]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"uvicorn exited with {process.returncode}:\n{output}")
            try:
                httpx.get(base_url + "/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"uvicorn did not answer within {SERVER_START_TIMEOUT}s")
                time.sleep(0.05)
        yield base_url, database_url
    finally:
        process.terminate()  # SIGTERM to this PID: uvicorn runs the lifespan's shutdown
        try:
            process.wait(timeout=SERVER_START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_a_turn_streams_from_a_real_server(server: tuple[str, str]) -> None:
    """Over a socket, events arrive one by one, in order, and the run is in the database."""
    base_url, database_url = server
    arrivals: list[float] = []
    body = ""
    with httpx.stream("GET", base_url + "/greet", params={"who": "Ada"}, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for text in response.iter_text():
            arrivals.append(time.monotonic())
            body += text
    assert len(arrivals) > 1, "the events arrived in one piece: nothing was streamed"
    result = assert_one_streamed_turn(parse_events(body))
    run = anyio.run(read_run, database_url, result["run_id"], backend="trio")
    assert run.messages[-1]["content"] == result["text"]
    assert run.status == "completed"
