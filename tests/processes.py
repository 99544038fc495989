"""`newsbot` as a real process for tests: started with a clean environment, its log lines read
as they come so a test can wait for one (an event, not a sleep), killed or stopped at will."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import REPO

START_TIMEOUT_S = 20.0


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stderr_lines: list[str] = []
        self.stdout_lines: list[str] = []
        self._changed = asyncio.Event()
        assert proc.stderr is not None and proc.stdout is not None
        self._readers = [
            asyncio.create_task(self._read(proc.stderr, self.stderr_lines)),
            asyncio.create_task(self._read(proc.stdout, self.stdout_lines)),
        ]

    @classmethod
    async def spawn(
        cls, *args: str, environ: Mapping[str, str] | None = None, cwd: Path = REPO
    ) -> BotProcess:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("NEWSBOT_", "SLACK_", "DISCORD_"))
        }
        env.update(environ or {})
        env["PYTHONIOENCODING"] = "utf-8"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, cwd=cwd, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self, stream: asyncio.StreamReader, into: list[str]) -> None:
        while line := await stream.readline():
            into.append(line.decode("utf-8", "replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        return "\n".join(self.stdout_lines)

    async def wait_for_line(
        self, needle: str, timeout: float = START_TIMEOUT_S, *, stdout: bool = False
    ) -> str:
        """The first log line (or, with `stdout`, output line) containing `needle`; fails with
        the log if the process ends first or nothing comes in time."""
        lines = self.stdout_lines if stdout else self.stderr_lines
        async with asyncio.timeout(timeout):
            seen = 0
            while True:
                for line in lines[seen:]:
                    if needle in line:
                        return line
                seen = len(lines)
                if all(r.done() for r in self._readers):
                    raise AssertionError(
                        f"the bot ended (rc={self.proc.returncode}) before logging {needle!r}:"
                        f"\n{self.stderr}"
                    )
                self._changed.clear()
                await self._changed.wait()

    async def kill(self) -> None:
        self.proc.kill()
        assert await self.proc.wait() == -signal.SIGKILL
        await asyncio.gather(*self._readers)

    async def finish(self, timeout: float = 60.0) -> int:
        """Wait for the process to end; its exit status."""
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await asyncio.gather(*self._readers)
        return code

    async def terminate(self, timeout: float = 20.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return await self.finish(timeout)
