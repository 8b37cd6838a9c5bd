"""Network template overrides are rendered in child processes, never on the event loop.

An override is code a network admin wrote. Rendering it in the service's own process let one
template freeze the service (`{{ 9**9**9 }}` in one C call, a 5000 x 5000 loop, a billion-char
string): no thread can be interrupted, so each render goes to a small pool of child processes
(sandbox_child.py) with a hard time limit; a child past it is killed and replaced. The child
also limits its output and its memory. Saving a template renders it here first against a
sample, so a template over any limit is refused at save time (422); one that only exceeds them
with real data fails that one message with the reason.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from services.notifications.config import DeliverySettings

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0  # a child's imports, on a loaded machine; not part of a template's time


class TemplateFailed(ValueError):
    """The template could not render: `part` names which one, the message says why."""

    def __init__(self, message: str, part: str | None = None, line: int | None = None) -> None:
        where = f" (line {line})" if line else ""
        super().__init__(f"{part}{where}: {message}" if part else message)
        self.part = part


class SandboxUnavailable(RuntimeError):
    """No child process could be started: not the template's fault, so worth retrying."""


class _Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, settings: DeliverySettings) -> _Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.notifications.sandbox_child",
            str(settings.template_max_output_chars), str(settings.template_memory_mb),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            cwd=ROOT, limit=settings.template_max_output_chars * 8 + 65_536)
        child = cls(process)
        assert process.stdout is not None
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), STARTUP_SECONDS)
        except (TimeoutError, asyncio.TimeoutError):
            ready = b""
        if not ready.startswith(b'{"ready"'):
            await child.kill()
            raise SandboxUnavailable("the template renderer could not start")
        return child

    async def call(self, request: bytes) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(request)
        await self.process.stdin.drain()
        line = await self.process.stdout.readline()
        if not line:
            raise EOFError
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def kill(self) -> None:
        if self.alive:
            self.process.kill()
        await self.process.wait()


class TemplateSandbox:
    """A pool of rendering children, started on first use."""

    def __init__(self, settings: DeliverySettings) -> None:
        self._settings = settings
        self._idle: list[_Child] = []
        self._slots = asyncio.Semaphore(max(1, settings.template_processes))

    async def render(self, parts: dict[str, str], context: dict[str, Any]) -> dict[str, str]:
        """The parts rendered with the context; TemplateFailed when one cannot be."""
        request = (json.dumps({"parts": parts, "context": context}, default=str) + "\n").encode()
        timeout = self._settings.template_timeout_seconds
        async with self._slots:
            child = self._idle.pop() if self._idle else await _Child.start(self._settings)
            try:
                answer = await asyncio.wait_for(child.call(request), timeout)
            except (TimeoutError, asyncio.TimeoutError):
                await child.kill()
                raise TemplateFailed(f"takes longer than {timeout:g} s to render") from None
            except (EOFError, ConnectionError, ValueError):
                await child.kill()
                raise TemplateFailed("needs more memory than a template may use") from None
            except BaseException:
                await child.kill()
                raise
            if child.alive and not answer.get("limit"):
                self._idle.append(child)
            else:
                await child.kill()
        if "error" in answer:
            raise TemplateFailed(answer["error"], answer.get("part"), answer.get("line"))
        return answer["parts"]

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for child in idle:
            if child.process.stdin is not None:
                child.process.stdin.close()
            await child.kill()
