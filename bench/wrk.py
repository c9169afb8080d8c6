"""Driving HTTP load with wrk (C, event loop per thread) instead of a Python client.

A Python load generator tops out at a few hundred requests a second on this machine, so
against it every endpoint looks the same and a ratio measures the generator. wrk replays
pre-built, pre-signed requests (a Lua table built once per thread) and reports from its own
histogram; the figures come back through the script's `done` hook as one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_MARKER = "WRK_JSON "

_SCRIPT_TAIL = r"""
local requests = {}
local next_index = 0

init = function(args)
  for n = 1, #bodies do
    requests[n] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/json",
      ["TikTok-Signature"] = signatures[n],
    }, bodies[n])
  end
end

request = function()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, ' ..
    '"read": %d, "write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str | None:
    """wrk's path, installing Debian's package when it is missing and we may; else None."""
    found = shutil.which("wrk")
    if found is not None:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "wrk"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    return shutil.which("wrk")


def _lua_string(text: str) -> str:
    # A long bracket needs no escaping; pick a level the text does not close.
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def write_script(requests: list[tuple[bytes, str]], directory: Path) -> Path:
    """A wrk script replaying (body, TikTok-Signature) pairs in turn."""
    bodies = ",\n".join(_lua_string(body.decode()) for body, _ in requests)
    signatures = ",\n".join(_lua_string(signature) for _, signature in requests)
    script = directory / "replay.lua"
    script.write_text(
        f"bodies = {{\n{bodies}\n}}\nsignatures = {{\n{signatures}\n}}\n{_SCRIPT_TAIL}",
        encoding="utf-8",
    )
    return script


def run_wrk(
    wrk: str,
    url: str,
    requests: list[tuple[bytes, str]],
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
) -> WrkResult:
    with tempfile.TemporaryDirectory(prefix="philia-wrk-") as directory:
        script = write_script(requests, Path(directory))
        completed = subprocess.run(
            [
                wrk,
                f"-t{min(threads, connections)}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                "10s",
                "-s",
                str(script),
                url,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    line = next((line for line in completed.stdout.splitlines() if line.startswith(_MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    raw = json.loads(line[len(_MARKER) :])
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        non_2xx=raw["non_2xx"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )
