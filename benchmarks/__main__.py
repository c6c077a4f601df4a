"""hookline side by side with the machine's ceiling and a naive Celery baseline.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m benchmarks            # the full run (about ten minutes)
    .venv/bin/python -m benchmarks --quick    # small sizes: checks the harness, not the speed

Needs PostgreSQL (HOOKLINE_TEST_POSTGRES, default local trust) and Redis (HOOKLINE_BENCH_REDIS,
default redis://127.0.0.1:6379/15). Prints the tables and the verdict on each target, and
writes ``benchmarks/results/latest.json``, ``latest.md`` (the tables, for BENCHMARKS.md) and
``latest.png``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from . import scenarios
from .harness import Receiver
from .scenarios import Sizes

RESULTS = Path(__file__).with_name("results")
PARTS = ("ceiling", "naive", "sqlite", "postgres", "fanout", "hanging", "pending")
console = Console()


def machine() -> dict[str, Any]:
    memory = Path("/proc/meminfo").read_text().split()[1]
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(int(memory) / 1024 / 1024, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run(parts: list[str], sizes: Sizes, save: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "sizes": sizes.__dict__,
    }
    receiver = Receiver()
    try:
        steps: dict[str, Callable[[], Any]] = {
            "ceiling": lambda: scenarios.run_ceiling(receiver, sizes),
            "naive": lambda: scenarios.run_naive(receiver, sizes),
            "sqlite": lambda: scenarios.run_sqlite(receiver, sizes),
            "postgres": lambda: scenarios.run_postgres(receiver, sizes),
            "fanout": lambda: {
                "SQLite": _fanout_sqlite(receiver, sizes),
                "PostgreSQL, 1 worker": _fanout_postgres(receiver, sizes),
            },
            "hanging": lambda: scenarios.run_hanging(receiver, sizes),
            "pending": lambda: scenarios.run_pending(receiver, sizes),
        }
        for part in parts:
            started = time.monotonic()
            with console.status(f"running {part}"):
                results[part] = steps[part]()
            console.log(f"{part}: {time.monotonic() - started:.0f}s")
            save(results)  # a part that fails later loses nothing measured before it
    finally:
        receiver.close()
    return results


def _fanout_sqlite(receiver: Receiver, sizes: Sizes) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return scenarios.run_fanout(receiver, sizes, f"sqlite:///{folder}/h.db", ["serve"])


def _fanout_postgres(receiver: Receiver, sizes: Sizes) -> Any:
    with scenarios.Database() as url:
        return scenarios.run_fanout(receiver, sizes, url, ["api", "worker"])


# -- report ------------------------------------------------------------------------------------


def systems(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One row per system: drain rate, latency at the steady rate, peak RSS."""
    rows = {}
    if "ceiling" in results:
        rows["ceiling: bare aiohttp"] = results["ceiling"]
    if "naive" in results:
        rows["naive: Celery + Redis + requests"] = results["naive"]
    if "sqlite" in results:
        rows["hookline, SQLite (serve)"] = results["sqlite"]
    for workers in ("1 worker", "2 workers"):
        if workers in results.get("postgres", {}):
            rows[f"hookline, PostgreSQL, {workers}"] = results["postgres"][workers]
    return rows


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _rss(rss: dict[str, float] | None) -> str:
    return "—" if not rss else ", ".join(f"{name} {mib:.0f}" for name, mib in rss.items())


def verdicts(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met) for every target the run has numbers for."""
    out: list[tuple[str, str, bool | None]] = []
    ceiling = results.get("ceiling", {}).get("drain_per_s")
    sqlite = results.get("sqlite", {})
    if ceiling and sqlite:
        ratio = sqlite["drain_per_s"] / ceiling
        out.append(("SQLite drain ≥ 0.8 × ceiling", f"{ratio:.2f} ×", ratio >= 0.8))
    if sqlite and "naive" in results:
        ratio = sqlite["drain_per_s"] / results["naive"]["drain_per_s"]
        out.append(("SQLite drain ≥ 10 × naive", f"{ratio:.1f} ×", ratio >= 10))
    if sqlite:
        rate = sqlite["ingest"]["events_per_s"]
        out.append(("ingest ≥ 5,000 events/s (SQLite)", f"{rate:,.0f}/s", rate >= 5000))
        ack = sqlite["at_ack_rate"]["ack_p99_ms"]
        out.append(("ack p99 ≤ 10 ms at 1,000 events/s (SQLite)", f"{ack:.1f} ms", ack <= 10))
        p50, p99 = sqlite["p50_ms"], sqlite["p99_ms"]
        out.append(("publish-to-receive p50 ≤ 5 ms at 500/s (SQLite)", f"{p50:.1f} ms", p50 <= 5))
        out.append(("publish-to-receive p99 ≤ 25 ms at 500/s (SQLite)", f"{p99:.1f} ms", p99 <= 25))
    if "postgres" in results:
        rate = results["postgres"]["ingest"]["events_per_s"]
        out.append(("ingest ≥ 5,000 events/s (PostgreSQL)", f"{rate:,.0f}/s", rate >= 5000))
    for backend, fanout in results.get("fanout", {}).items():
        worst = max(fanout["all_received_ms"])
        out.append((f"1,000 webhooks within 250 ms ({backend})", f"{worst:.0f} ms", worst <= 250))
    if "hanging" in results:
        kept = results["hanging"]["kept"]
        out.append(("≥ 90 % healthy throughput, 10 % hanging", f"{kept:.0%}", kept >= 0.9))
    for backend, pending in results.get("pending", {}).items():
        worst = max(pending["rss_mib"].values())
        out.append(
            (f"RSS ≤ 150 MiB per process, 1M pending ({backend})", f"{worst:.0f} MiB", worst <= 150)
        )
    two = results.get("postgres", {}).get("2 workers")
    if two and sqlite:
        ratio = two["drain_per_s"] / sqlite["drain_per_s"]
        out.append(("PostgreSQL 2 workers ≥ 0.5 × SQLite", f"{ratio:.2f} ×", ratio >= 0.5))
    return out


def report(results: dict[str, Any]) -> None:
    ceiling = results.get("ceiling", {}).get("drain_per_s")
    table = Table(title="Side by side: drain a backlog; publish-to-receive at a steady rate")
    for column in ("system", "deliveries/s", "× ceiling", "p50 ms", "p99 ms", "peak RSS MiB"):
        table.add_column(
            column, justify="left" if column in ("system", "peak RSS MiB") else "right"
        )
    for name, row in systems(results).items():
        table.add_row(
            name,
            _n(row["drain_per_s"]),
            _n(row["drain_per_s"] / ceiling, 2) if ceiling else "—",
            _n(row.get("p50_ms"), 1),
            _n(row.get("p99_ms"), 1),
            _rss(row.get("rss_mib")),
        )
    console.print(table)
    scenarios_table = Table(title="Scenarios")
    for column in ("scenario", "result"):
        scenarios_table.add_column(column)
    for name, text in scenario_lines(results):
        scenarios_table.add_row(name, text)
    console.print(scenarios_table)
    verdict = Table(title="Targets")
    for column in ("target", "measured", "met"):
        verdict.add_column(column)
    for target, measured, met in verdicts(results):
        verdict.add_row(target, measured, "yes" if met else "[bold red]no[/]")
    console.print(verdict)


def scenario_lines(results: dict[str, Any]) -> list[tuple[str, str]]:
    lines = []
    for backend, block in (
        ("SQLite", results.get("sqlite", {}).get("ingest")),
        ("PostgreSQL", results.get("postgres", {}).get("ingest")),
    ):
        if block:
            lines.append(
                (
                    f"ingest, 64 publishers ({backend}, API process)",
                    f"{block['events_per_s']:,.0f} events/s, ack p50 {block['ack_p50_ms']:.1f} "
                    f"ms, p99 {block['ack_p99_ms']:.1f} ms; RSS {_rss(block['rss_mib'])} MiB",
                )
            )
    if "sqlite" in results:
        a = results["sqlite"]["at_ack_rate"]
        lines.append(
            (
                "publish at 1,000 events/s (SQLite, serve)",
                f"ack p50 {a['ack_p50_ms']:.1f} ms, p99 {a['ack_p99_ms']:.1f} ms; "
                f"publish-to-receive p50 {a['p50_ms']:.1f} ms, p99 {a['p99_ms']:.1f} ms",
            )
        )
    for backend, fanout in results.get("fanout", {}).items():
        rounds = ", ".join(f"{ms:.0f}" for ms in fanout["all_received_ms"])
        lines.append((f"one event to 1,000 webhooks ({backend})", f"all received in {rounds} ms"))
    if "hanging" in results:
        h = results["hanging"]
        lines.append(
            (
                "one webhook in ten hanging (SQLite)",
                f"healthy {h['with_one_in_ten_hanging_per_s']:,.0f}/s against "
                f"{h['healthy_per_s']:,.0f}/s with none hanging (medians of "
                f"{len(h['pairs'])} pairs of runs; median ratio {h['kept']:.0%})",
            )
        )
    for backend, p in results.get("pending", {}).items():
        lines.append(
            (
                f"1,000,000 pending ({backend})",
                f"GET /deliveries p50 {p['list_p50_ms']:.1f} ms, p99 {p['list_p99_ms']:.1f} ms "
                f"({p['lists']} lists, {p['delivered_meanwhile']:,} delivered meanwhile); "
                f"peak RSS {_rss(p['rss_mib'])} MiB",
            )
        )
    return lines


def markdown(results: dict[str, Any]) -> str:
    """The same tables, in Markdown, for BENCHMARKS.md."""
    ceiling = results.get("ceiling", {}).get("drain_per_s")
    out = [
        "| system | deliveries/s | × ceiling | p50 ms | p99 ms | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, row in systems(results).items():
        ratio = _n(row["drain_per_s"] / ceiling, 2) if ceiling else "—"
        out.append(
            f"| {name} | {_n(row['drain_per_s'])} | {ratio} | {_n(row.get('p50_ms'), 1)} "
            f"| {_n(row.get('p99_ms'), 1)} | {_rss(row.get('rss_mib'))} |"
        )
    out += ["", "| scenario | result |", "| --- | --- |"]
    out += [f"| {name} | {text} |" for name, text in scenario_lines(results)]
    out += ["", "| target | measured | met |", "| --- | --- | --- |"]
    out += [
        f"| {target} | {measured} | {'yes' if met else '**no**'} |"
        for target, measured, met in verdicts(results)
    ]
    return "\n".join(out) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = systems(results)
    names = [name.replace(": ", "\n").replace(", ", "\n", 1) for name in rows]
    fig, (rate_ax, latency_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    rate_ax.bar(names, [row["drain_per_s"] for row in rows.values()], color="#3b6ea5")
    rate_ax.set_title("Drain a backlog: deliveries/s (higher is better)")
    rate_ax.tick_params(axis="x", labelsize=7)
    x = range(len(rows))
    latency_ax.bar([i - 0.2 for i in x], [r.get("p50_ms") or 0 for r in rows.values()], 0.4,
                   label="p50", color="#7aa6c2")  # fmt: skip
    latency_ax.bar([i + 0.2 for i in x], [r.get("p99_ms") or 0 for r in rows.values()], 0.4,
                   label="p99", color="#c2577a")  # fmt: skip
    latency_ax.set_xticks(list(x), names, fontsize=7)
    latency_ax.set_yscale("log")
    latency_ax.set_title("Publish-to-receive at 500 events/s, ms (log; lower is better)")
    latency_ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a harness check")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run these parts only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where JSON and PNG go")
    args = parser.parse_args()
    sizes = Sizes().quick() if args.quick else Sizes()
    parts = args.only or list(PARTS)
    if "naive" in parts and not scenarios.redis_up():
        sys.exit("the naive baseline needs Redis at 127.0.0.1:6379 (redis-cli ping failed)")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "latest"

    def save(results: dict[str, Any]) -> None:
        (args.out / f"{name}.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))

    results = run(parts, sizes, save)
    report(results)
    chart(results, args.out / f"{name}.png")
    (args.out / f"{name}.md").write_text(markdown(results))
    console.print(f"wrote {args.out / name}.json, .md and .png")


if __name__ == "__main__":
    main()
