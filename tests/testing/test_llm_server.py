"""The scripted LLM server: both protocols, scripted faults, a separate process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import anyio
import httpx
import pytest

from promptactors.testing._llm_server import Reply, serve_llm


@pytest.mark.anyio
async def test_it_picks_a_free_port_and_plays_the_openai_protocol() -> None:
    """Port 0 becomes a real port; /chat/completions streams chunks, usage and [DONE]."""
    async with serve_llm(Reply(tokens=2)) as server, httpx.AsyncClient() as client:
        assert server.port > 0
        with anyio.fail_after(10):
            response = await client.post(
                server.base_url + "/chat/completions",
                json={"model": "m", "messages": [], "stream_options": {"include_usage": True}},
            )
    assert response.headers["content-type"] == "text/event-stream"
    text = response.text
    assert text.count('"content":"tok "') == 2
    assert '"usage"' in text
    assert text.endswith("data: [DONE]\n\n")


@pytest.mark.anyio
async def test_it_plays_the_anthropic_protocol() -> None:
    """/messages streams message_start ... message_stop events."""
    async with serve_llm(Reply(tokens=1, comments=True)) as server, httpx.AsyncClient() as client:
        with anyio.fail_after(10):
            response = await client.post(server.base_url + "/messages", json={"model": "m"})
    events = [line for line in response.text.splitlines() if line.startswith("event: ")]
    assert events == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        "event: content_block_delta",
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]


@pytest.mark.anyio
async def test_scripted_replies_are_served_in_order_then_the_default() -> None:
    """Scripted errors come first, with their retry headers; then the default reply."""
    async with serve_llm(Reply(tokens=1)) as server, httpx.AsyncClient() as client:
        server.script(Reply.error(429, retry_after="1", retry_after_ms="1000"), Reply.error(529))
        url = server.base_url + "/chat/completions"
        with anyio.fail_after(10):
            statuses = []
            for _ in range(3):
                response = await client.post(url, json={})
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert response.headers["retry-after"] == "1"
                    assert response.headers["retry-after-ms"] == "1000"
                    assert response.json()["error"]["type"] == "rate_limit_error"
    assert statuses == [429, 529, 200]
    assert [r.path for r in server.requests] == ["/v1/chat/completions"] * 3


@pytest.mark.anyio
async def test_an_unknown_path_is_404() -> None:
    """Anything but the two endpoints answers 404."""
    async with serve_llm() as server, httpx.AsyncClient() as client:
        with anyio.fail_after(10):
            response = await client.get(f"http://127.0.0.1:{server.port}/nope")
    assert response.status_code == 404


@pytest.mark.anyio
async def test_a_slow_drip_spaces_the_chunks() -> None:
    """``interval`` delays every chunk after the first."""
    async with serve_llm(Reply(tokens=3, interval=0.05)) as server, httpx.AsyncClient() as client:
        with anyio.fail_after(10):
            start = anyio.current_time()
            await client.post(server.base_url + "/chat/completions", json={})
            assert anyio.current_time() - start >= 0.15


@pytest.mark.anyio
async def test_a_client_disconnect_is_counted() -> None:
    """A client closing mid-stream shows up in ``client_disconnects``."""
    async with serve_llm(Reply(tokens=100, interval=0.01)) as server:
        with anyio.fail_after(10):
            stream = await anyio.connect_tcp("127.0.0.1", server.port)
            await stream.send(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"
            )
            await stream.receive()
            await stream.aclose()
            await server.wait_for_client_disconnects(1)


def test_it_runs_as_a_separate_process_stopped_by_pid() -> None:
    """``python -m`` prints the port, serves, and exits on SIGTERM sent to its PID."""
    process = subprocess.Popen(
        [sys.executable, "-m", "promptactors.testing._llm_server", "--port", "0", "--tokens", "3"],
        stdout=subprocess.PIPE,
    )
    try:
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(20)
        assert line
        assert line[0].startswith(b"LISTENING ")
        port = int(line[0].split()[1])
        response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={}, timeout=10)
        assert response.text.count('"content":"tok "') == 3
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=10) is not None
        assert process.stdout is not None
        process.stdout.close()
