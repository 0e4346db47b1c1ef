"""Embedding promptactors in a FastAPI app: one runtime for the app's life, turns streamed
to the browser as server-sent events.

The runtime opens in the app's lifespan, on the server's own event loop (asyncio under
uvicorn; trio works too, under hypercorn): no thread, no second loop. Run it with::

    pip install 'prompt-actors[examples]'
    uvicorn app:app --app-dir examples/fastapi_app

then open http://127.0.0.1:8000/ or ``curl -N 'http://127.0.0.1:8000/greet?who=Ada'``.
Settings come from ``PROMPTACTORS_*`` variables (default: ./promptactors.db and the
simulated provider).
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse

import promptactors

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

GREET = {
    "id": "greet",
    "messages": [
        {"role": "system", "content": "You are brief and friendly."},
        {"role": "user", "content": "Say hello to {{who}}."},
    ],
    "variables": [{"name": "who", "default": "world"}],
}

PAGE = """<!doctype html>
<meta charset="utf-8"><title>promptactors</title>
<p id="answer"></p><p id="stats"></p>
<script>
const events = new EventSource("/greet?who=Ada");
events.onmessage = (e) => { answer.textContent += JSON.parse(e.data).text; };
events.addEventListener("result", (e) => {
  const r = JSON.parse(e.data);
  stats.textContent = `${r.output_tokens} tokens, run ${r.run_id}`;
  events.close();
});
events.addEventListener("error", () => events.close());
</script>
"""


def create_app(settings: promptactors.RuntimeSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to ``PROMPTACTORS_*`` variables."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with promptactors.open_runtime(settings) as runtime:
            app.state.runtime = runtime
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.get("/greet")
    async def greet(request: Request, who: str = "world") -> StreamingResponse:
        """Stream one turn: a ``data:`` event per chunk, then a ``result`` event."""
        runtime: promptactors.Runtime = request.app.state.runtime
        instance = await runtime.start_instance(prompt=GREET, variables={"who": who})
        return StreamingResponse(_turn_events(instance), media_type="text/event-stream")

    return app


async def _turn_events(instance: promptactors.InstanceHandle) -> AsyncIterator[str]:
    try:
        async with instance.stream() as turn:
            async for chunk in turn:  # a retried attempt starts its text again
                yield _event({"text": chunk.text, "attempt": chunk.attempt})
            result = await turn.result()
        yield _event(
            {
                "text": result.text,
                "output_tokens": result.output_tokens,
                "run_id": result.run_id,
                "task_id": result.task_id,
            },
            name="result",
        )
    except promptactors.PromptActorsError as exc:
        yield _event({"error": str(exc)}, name="error")
    finally:
        with anyio.CancelScope(shield=True):  # also when the browser went away mid-turn
            await instance.stop()


def _event(data: dict[str, Any], name: str | None = None) -> str:
    head = f"event: {name}\n" if name else ""
    return f"{head}data: {json.dumps(data)}\n\n"


app = create_app()
