"""Run every bench/bench_*.py in its own process and rewrite bench/RESULTS.md from its figures."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.common import RESULT_PREFIX, machine_info

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_MD = BENCH_DIR / "RESULTS.md"
STATE_MARK = "<!-- bench-state "
SPECIAL_KEYS = ("name", "title", "target", "comparison", "met")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    names = _selected(discover(), args.only)
    if not names:
        print(f"no benchmark matches {args.only}; have: {', '.join(discover())}")
        return 2
    machine = machine_info()
    sections = _read_state()
    failed = []
    for name in names:
        section = run_benchmark(name, quick=args.quick, machine=machine)
        if section["returncode"] != 0:
            failed.append(name)
            section = _keep_previous(sections.get(name), section)
        # Only this section's text is replaced: the others, and notes written under them,
        # stay as they were (a full re-render used to drop them).
        record_section(name, section)
    _stamp_last_run(machine)
    print(f"wrote {RESULTS_MD.relative_to(BENCH_DIR.parent)}")
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


def _parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this benchmark (e.g. members or bench_members); repeatable",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="pass --quick to the benchmarks that accept it (smaller runs)",
    )
    return parser.parse_args(argv)


def discover() -> list[str]:
    """Module names of bench/bench_*.py, sorted."""
    return sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))


def _selected(names: list[str], only: list[str] | None) -> list[str]:
    if not only:
        return names
    wanted = {w if w.startswith("bench_") else f"bench_{w}" for w in only}
    return [name for name in names if name in wanted]


def accepts_quick(name: str) -> bool:
    """A benchmark takes --quick when its source defines the option."""
    return '"--quick"' in (BENCH_DIR / f"{name}.py").read_text(encoding="utf-8")


def run_benchmark(name: str, *, quick: bool, machine: dict) -> dict:
    """Run `python -m bench.<name>`, streaming its output; collect its RESULT lines."""
    command = [sys.executable, "-m", f"bench.{name}"]
    if quick and accepts_quick(name):
        command.append("--quick")
    print(f"\n### python {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    results = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command,
        cwd=BENCH_DIR.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    ) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            if line.startswith(RESULT_PREFIX):
                results.append(_parse_result(name, line))
    seconds = round(time.perf_counter() - started, 1)
    print(f"### {name}: exit {process.returncode} in {seconds} s", flush=True)
    return {
        "name": name,
        "command": " ".join(["python", *command[1:]]),
        "date": _now(),
        "seconds": seconds,
        "returncode": process.returncode,
        "machine": machine,
        "results": [r for r in results if r is not None],
    }


def _parse_result(module: str, line: str) -> dict | None:
    try:
        result = json.loads(line[len(RESULT_PREFIX) :])
    except json.JSONDecodeError:
        print(f"(ignored a RESULT line that is not JSON: {line.strip()[:80]})")
        return None
    result.setdefault("name", module.removeprefix("bench_"))
    return result


def record_run(
    name: str, command: str, results: list[dict], seconds: float, returncode: int
) -> None:
    """Write one section of RESULTS.md from figures measured outside run_all (bench/load.py
    runs for minutes and is not a bench_*.py); a failed run keeps the last figures, marked."""
    section = {
        "name": name,
        "command": command,
        "date": _now(),
        "seconds": round(seconds, 1),
        "returncode": returncode,
        "machine": machine_info(),
        "results": results,
    }
    if returncode != 0:
        section = _keep_previous(_read_state().get(name), section)
    record_section(name, section)
    print(f"wrote the {name} section of {RESULTS_MD}")


def _keep_previous(previous: dict | None, failed: dict) -> dict:
    """A failed run shows what it printed, or else the last figures, marked as failed."""
    section = dict(previous if previous and not failed["results"] else failed)
    section["failure"] = f"the run of {failed['date']} failed with exit code {failed['returncode']}"
    return section


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- RESULTS.md ----------------------------------------------------------------------


def _read_state() -> dict[str, dict]:
    """The sections of the previous RESULTS.md, from the state comments it carries."""
    if not RESULTS_MD.exists():
        return {}
    sections = {}
    for match in re.finditer(
        re.escape(STATE_MARK) + r"(.*?) -->", RESULTS_MD.read_text(encoding="utf-8")
    ):
        try:
            section = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        sections[section["name"]] = section
    return sections


def record_section(name: str, section: dict) -> None:
    """Write one section into RESULTS.md (added, or put in place of its last run) and leave
    every other byte of the file as it was: for drivers run on their own (`make faults`)
    rather than by run_all. `section` has run_benchmark's keys (command, date, seconds,
    returncode, machine, results)."""
    section = {**section, "name": name}
    block = "\n".join(_render_section(section, section.get("machine") or {})) + "\n"
    if not RESULTS_MD.exists():
        RESULTS_MD.write_text(render({name: section}, section.get("machine") or {}), "utf-8")
        return
    text = RESULTS_MD.read_text(encoding="utf-8")
    starts = [m.start() for m in re.finditer(r"^## ", text, flags=re.MULTILINE)]
    head = text[: starts[0]] if starts else text
    blocks = [text[a:b] for a, b in zip(starts, starts[1:] + [len(text)], strict=True)]
    named = [(_block_name(b), b) for b in blocks]
    kept = [(n, b) for n, b in named if n != name]
    if len(kept) == len(named):  # new: in the sorted place render() would give it
        at = next((i for i, (n, _) in enumerate(kept) if n is not None and n > name), len(kept))
        kept.insert(at, (name, block))
    else:
        kept = [(n, block if n == name else b) for n, b in named]
    ending = text[len(text.rstrip("\n")) :]  # blocks are one blank line apart; the end as it was
    body = "\n\n".join(b.rstrip("\n") for _, b in kept)
    RESULTS_MD.write_text(head + body + ending, encoding="utf-8")


def _stamp_last_run(machine: dict) -> None:
    text = RESULTS_MD.read_text(encoding="utf-8")
    line = f"Last run: {_now()}, on {_machine_line(machine)}."
    RESULTS_MD.write_text(re.sub(r"^Last run: .*$", line, text, count=1, flags=re.M), "utf-8")


def _block_name(block: str) -> str | None:
    match = re.search(re.escape(STATE_MARK) + r"(.*?) -->", block)
    if match is None:
        return None
    try:
        return json.loads(match.group(1))["name"]
    except (json.JSONDecodeError, KeyError):
        return None


def render(sections: dict[str, dict], machine: dict) -> str:
    lines = [
        "# Benchmark results",
        "",
        "Written by `python -m bench.run_all` (see bench/README.md); rerun it rather than",
        "editing by hand. Each section keeps the figures of its last run.",
        "",
        f"Last run: {_now()}, on {_machine_line(machine)}.",
        "",
    ]
    for name in sorted(sections):
        lines += _render_section(sections[name], machine)
    return "\n".join(lines) + "\n"


def _machine_line(machine: dict) -> str:
    return (
        f"{machine.get('cpu')}, {machine.get('cores')} cores, {machine.get('ram_gb')} GB "
        f"RAM, PostgreSQL {machine.get('postgres')}, Python {machine.get('python')}"
    )


def _render_section(section: dict, machine: dict) -> list[str]:
    lines = [
        f"## {section['name'].removeprefix('bench_')}",
        "",
        f"`{section['command']}`: {section['date']}, {section['seconds']} s"
        + (
            ""
            if section.get("machine") == machine
            else f", on {_machine_line(section.get('machine') or {})}"
        )
        + ".",
        "",
    ]
    if section.get("failure"):
        lines += [f"**Failed:** {section['failure']}.", ""]
    if not section["results"]:
        lines += ["No RESULT lines were printed.", ""]
    for result in section["results"]:
        lines += _render_result(result)
    state = json.dumps(section, ensure_ascii=False, sort_keys=True).replace("-->", "--\\>")
    return lines + [STATE_MARK + state + " -->", ""]


def _render_result(result: dict) -> list[str]:
    lines = [f"### {result.get('title') or result['name']}", ""]
    if result.get("target"):
        met = result.get("met")
        verdict = "" if met is None else (" — **met**" if met else " — **not met**")
        lines += [f"Target: {result['target']}{verdict}", ""]
    lines += ["| figure | value |", "|---|---|"]
    for key, value in result.items():
        if key not in SPECIAL_KEYS:
            lines.append(f"| {key} | {_cell(value)} |")
    lines.append("")
    if result.get("comparison"):
        lines += [f"Comparison: {result['comparison']}", ""]
    return lines


def _cell(value) -> str:
    if isinstance(value, dict):
        text = " · ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(_cell(v) for v in value) or "none"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.exit(main())
