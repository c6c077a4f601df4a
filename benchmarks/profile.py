"""Profile a hookline process with py-spy while it does one job, and keep the summary.

    .venv/bin/python -m benchmarks.profile drain    # `hookline serve` draining a backlog
    .venv/bin/python -m benchmarks.profile ingest   # `hookline api` taking 64 publishers

py-spy samples only the thread holding the GIL (``--gil``): what costs CPU in Python, not what
waits. The summary (the top functions by own and by inclusive samples, and the CPU time per
delivery or event) goes to ``benchmarks/profiles/<job>.txt``; the raw samples beside it, for a
flame graph.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .harness import (
    TOPICS,
    Hookline,
    Receiver,
    drain_rate,
    hookline_env,
    publish,
    running,
)

PROFILES = Path(__file__).with_name("profiles")
PY_SPY = str(Path(sys.executable).with_name("py-spy"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(raw: Path, top: int = 40) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    lines = [f"{total} samples holding the GIL", "", "own time:"]
    lines += [f"{n / total:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "inclusive (hookline's own functions):"]
    lines += [
        f"{n / total:6.1%}  {frame}" for frame, n in inclusive.most_common() if "hookline/" in frame
    ][:top]
    return "\n".join(lines)


def spy(pid: int, raw: Path, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY_SPY, "record", "-p", str(pid), "-o", str(raw), "-f", "raw", "-r", "250",
         "--gil", "--nonblocking", "-d", str(int(seconds))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def profile_drain(receiver: Receiver, raw: Path, total: int = 60_000) -> str:
    with tempfile.TemporaryDirectory() as folder:
        env = hookline_env(f"sqlite:///{folder}/hookline.db")
        with running(Hookline(env, ["api"])) as api:
            api.add_webhooks([f"{receiver.url}/hook/{n}" for n in range(8)], [[t] for t in TOPICS])
            publish(api.url, total, TOPICS)
        receiver.reset()
        with running(Hookline(env, ["serve"])) as serve:
            pid = serve.processes[0][1].pid
            before = cpu_seconds(pid)
            sampler = spy(pid, raw, 6)
            stats = receiver.wait_for(total, 300)
            used = cpu_seconds(pid) - before
            sampler.wait()
    rate = drain_rate(stats, total)
    return f"drain: {rate:,.0f} deliveries/s, {used / total * 1e6:.0f} µs of CPU per delivery"


def profile_ingest(receiver: Receiver, raw: Path, total: int = 20_000) -> str:
    with tempfile.TemporaryDirectory() as folder:
        env = hookline_env(f"sqlite:///{folder}/hookline.db")
        with running(Hookline(env, ["api"])) as api:
            api.add_webhooks([f"{receiver.url}/hook/{n}" for n in range(8)], [[t] for t in TOPICS])
            pid = api.processes[0][1].pid
            before = cpu_seconds(pid)
            sampler = spy(pid, raw, 6)
            time.sleep(0.3)
            published = publish(api.url, total, TOPICS)
            used = cpu_seconds(pid) - before
            sampler.wait()
    return (
        f"ingest: {published.per_second:,.0f} events/s, "
        f"{used / total * 1e6:.0f} µs of CPU per event in the API process"
    )


def main() -> None:
    job = sys.argv[1] if len(sys.argv) > 1 else "drain"
    jobs = {"drain": profile_drain, "ingest": profile_ingest}
    PROFILES.mkdir(exist_ok=True)
    raw = PROFILES / f"{job}.raw.txt"
    receiver = Receiver()
    try:
        headline = jobs[job](receiver, raw)
    finally:
        receiver.close()
    text = f"{headline}\n\n{summary(raw)}\n"
    (PROFILES / f"{job}.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
