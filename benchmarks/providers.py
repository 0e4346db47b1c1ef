"""Client CPU per streamed token: our OpenAI-compatible provider vs the official SDK.

One local streaming server runs as a separate, lean process (the scripted LLM server on
asyncio); this process is the client, and its CPU is measured with
``time.process_time`` around each workload. Workloads: 1,000 and 100 concurrent
streamed completions of 50 tokens each, through

- ours: ``OpenAICompatibleProvider`` (its shared httpx client on our h11 transport), on
  trio (the runtime's default backend);
- the peer: the official ``openai`` package's ``AsyncOpenAI`` streaming client, on the
  same backend (it runs on trio through anyio; measured here it also costs less CPU per
  token there than on asyncio, so this is the stronger peer), with connection limits
  raised to the number of streams so that it never queues for a connection.

Every stream's tokens are counted; ``lost_tokens`` must be 0. ``ratio`` (at 1,000
streams) and ``ratio_100`` are ours / the SDK's CPU per token: lower is better.
"""

from __future__ import annotations

import importlib
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

import anyio

TOKENS_PER_STREAM = 50
BACKEND = "trio"  # the runtime's default; both clients run on it
_SERVER_START_TIMEOUT = 30.0


def _start_server(tokens: int, interval: float) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promptactors.testing._llm_server",
            "--port",
            "0",
            "--tokens",
            str(tokens),
            "--interval",
            str(interval),
            "--lifetime",
            "900",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line: list[bytes] = []
    reader = threading.Thread(
        target=lambda: line.append(process.stdout.readline() if process.stdout else b""),
        daemon=True,
    )
    reader.start()
    reader.join(_SERVER_START_TIMEOUT)
    if not line or not line[0].startswith(b"LISTENING "):
        _stop_server(process)
        raise RuntimeError("the benchmark server did not start")
    return process, int(line[0].split()[1])


def _stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()


def _ours(base_url: str, streams: int) -> tuple[float, int]:
    """(CPU seconds, tokens received) for ``streams`` concurrent streams through our provider."""
    from promptactors.providers._http_config import EndpointConfig
    from promptactors.providers._openai import OpenAICompatibleProvider
    from promptactors.providers._protocol import ChatMessage, ProviderRequest, TextDelta

    request = ProviderRequest(
        model="bench-model", messages=(ChatMessage("user", "Say fifty words, please."),)
    )
    received = 0

    async def one(provider: OpenAICompatibleProvider) -> None:
        nonlocal received
        async with provider.stream(request) as events:
            async for event in events:
                if type(event) is TextDelta:
                    received += event.chunks

    async def main() -> float:
        config = EndpointConfig(
            base_url=base_url, api_key="sk-bench", max_connections=max(streams, 1)
        )
        provider = OpenAICompatibleProvider(config)
        try:
            start = time.process_time()
            async with anyio.create_task_group() as tg:
                for _ in range(streams):
                    tg.start_soon(one, provider)
            return time.process_time() - start
        finally:
            await provider.aclose()

    cpu = anyio.run(main, backend=BACKEND)
    return cpu, received


def _sdk(base_url: str, streams: int) -> tuple[float, int]:
    """(CPU seconds, tokens received) for ``streams`` concurrent streams through AsyncOpenAI."""
    from openai import AsyncOpenAI, DefaultAsyncHttpxClient

    received = 0

    async def one(client: AsyncOpenAI) -> None:
        nonlocal received
        stream = await client.chat.completions.create(
            model="bench-model",
            messages=[{"role": "user", "content": "Say fifty words, please."}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received += 1

    async def main() -> float:
        # The SDK's own client class (its defaults), with limits raised for the load.
        limits = _sdk_httpx().Limits(
            max_connections=max(streams, 1000), max_keepalive_connections=max(streams, 100)
        )
        http_client = DefaultAsyncHttpxClient(limits=limits, timeout=120.0)
        client = AsyncOpenAI(base_url=base_url, api_key="sk-bench", http_client=http_client)
        try:
            start = time.process_time()
            async with anyio.create_task_group() as tg:
                for _ in range(streams):
                    tg.start_soon(one, client)
            return time.process_time() - start
        finally:
            await client.close()

    cpu = anyio.run(main, backend=BACKEND)
    return cpu, received


def _sdk_httpx() -> Any:
    """The httpx the installed SDK is built on (``httpx2`` from openai 3, ``httpx`` before)."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


def run(*, quick: bool) -> dict[str, object]:
    """Run the workloads against one server process; return the figures (prints nothing).

    ``quick`` measures each workload once (under two minutes); otherwise three times,
    keeping the median.
    """
    repeats = 1 if quick else 3
    process, port = _start_server(TOKENS_PER_STREAM, interval=0.0)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        # Warm both clients (imports, first connections) before measuring anything.
        _ours(base_url, 20)
        _sdk(base_url, 20)
        samples: dict[tuple[str, int], list[float]] = {}
        streams_done = tokens = expected = 0
        for _ in range(repeats):
            for workload in (1000, 100):
                for label, runner in (("ours", _ours), ("sdk", _sdk)):
                    cpu, got = runner(base_url, workload)
                    samples.setdefault((label, workload), []).append(cpu / max(got, 1) * 1e6)
                    streams_done += workload
                    tokens += got
                    expected += workload * TOKENS_PER_STREAM
    finally:
        _stop_server(process)

    def median(label: str, workload: int) -> float:
        return statistics.median(samples[(label, workload)])

    ours_1000, sdk_1000 = median("ours", 1000), median("sdk", 1000)
    ours_100, sdk_100 = median("ours", 100), median("sdk", 100)
    result: dict[str, Any] = {
        "streams": streams_done,
        "tokens": tokens,
        "lost_tokens": expected - tokens,
        "our_client_cpu_us_per_token": round(ours_1000, 1),
        "openai_sdk_cpu_us_per_token": round(sdk_1000, 1),
        "ratio": round(ours_1000 / sdk_1000, 3),
        "ratio_100": round(ours_100 / sdk_100, 3),
    }
    return result


if __name__ == "__main__":  # pragma: no cover - the CLI prints through `promptactors bench`
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
