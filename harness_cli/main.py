"""``harness``: launch an audit on an Agent Harness server, follow it, fetch its SARIF.

    export HARNESS_URL=https://harness.example.com HARNESS_TOKEN=hrn_…
    harness launch --playbook codebase-audit --upload . --wait --sarif results.sarif

Exit status, as ``manage.py launch_run``'s: 0 when the launch was accepted (and, with --wait,
the run ended with a report to review); 1 when the launch was refused, the wait timed out or
the server could not be reached; with --wait, 2 when the run failed, 3 when its budget ran out,
4 when it was cancelled, 5 when every agent left waits for a reviewer's approval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness_cli.client import ApiError, Client

EPILOG = """environment: HARNESS_URL (the server), HARNESS_TOKEN (an API token, scopes read
and launch). Exit status: 0 accepted (with --wait: ended with a report to review), 1 refused,
timed out or unreachable, 2 failed, 3 budget ran out, 4 cancelled, 5 agents await approval."""
EXIT_STATUS = {"failed": 2, "budget_exhausted": 3, "cancelled": 4}
REFUSED = 1
AWAITING_APPROVAL = 5


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"harness: --set takes key=value, got {item!r}")
        options[key] = _value(value)
    if args.exclude:
        options["exclude"] = [*options.get("exclude", []), *args.exclude]
    if args.no_default_excludes:
        options["default_excludes"] = False
    return options


def launch_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"playbook": args.playbook, "title": args.title}
    if args.target:
        body["target"] = args.target
    for name in ("provider", "model", "max_concurrency", "budget_usd", "max_depth"):
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    if args.hold_agents:
        body["hold_agents"] = True
    options = _options(args)
    if options:
        body["options"] = options
    return body


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def progress(run: dict[str, Any], tty: bool) -> str:
    agents = run["agents"]
    done = agents["succeeded"] + agents["failed"] + agents["skipped"]
    total = agents["total"]
    line = (
        f"{done}/{total} agents · {run['in_flight']['running']} running · "
        f"${run['cost_usd']:.4f} · {run['findings']} findings · {run['status']}"
    )
    if tty:
        width = 24
        filled = int(width * done / total) if total else 0
        return f"\r{'█' * filled}{'░' * (width - filled)} {line:<70}"
    return line


def follow(client: Client, run_id: int, timeout: float, poll: float) -> tuple[dict[str, Any], int]:
    """Until the run ends, or stands still with every agent left waiting for approval: (the
    run's detail, how many agents wait)."""
    tty = sys.stderr.isatty()
    deadline = time.monotonic() + timeout
    last, still = "", 0
    while True:
        run = client.get(f"/api/v1/runs/{run_id}/")
        line = progress(run, tty)
        if line != last:
            print(line, file=sys.stderr, end="" if tty else "\n", flush=True)
            last = line
        if run["finished_at"] is not None:
            break
        flight = run["in_flight"]
        moving = flight["running"] + flight["queued"] + flight["retrying"]
        held = flight["awaiting_approval"] if run["status"] == "running" and not moving else 0
        # Twice in a row: an agent just approved is not mistaken for a run standing still.
        still = still + 1 if held else 0
        if still >= 2:
            if tty:
                print(file=sys.stderr)
            return run, held
        if time.monotonic() > deadline:
            if tty:
                print(file=sys.stderr)
            raise TimeoutError(f"run #{run_id} did not finish within {timeout:.0f} s")
        time.sleep(poll)
    if tty:
        print(file=sys.stderr)
    return run, 0


def outcome(client: Client, run: dict[str, Any], held: int, args: argparse.Namespace) -> int:
    """Print the end of a followed run, fetch its SARIF if asked; the exit status."""
    summary = dict(run["summary"])
    if held:
        summary["awaiting_approval"] = held
    if args.sarif and run["report_version"] is not None:
        data = client.export(run["id"], run["report_version"], "sarif")
        Path(args.sarif).write_bytes(data)
        say(f"SARIF of report v{run['report_version']} written to {args.sarif}")
    elif args.sarif:
        say("No report to export: the run produced none.")
    print(json.dumps(summary) if args.json else _text(summary, run))
    if held:
        say(
            f"Run #{run['id']}: {held} agent{'s' if held != 1 else ''} "
            f"{'await' if held != 1 else 'awaits'} approval; a reviewer approves "
            f"{'them' if held != 1 else 'it'} at "
            f"{client.url}/approvals/"
        )
        return AWAITING_APPROVAL
    code = EXIT_STATUS.get(run["status"], 0)
    if code:
        say(f"Run #{run['id']} {run['status']}: {run['status_reason'] or 'no reason recorded'}")
    return code


def _text(s: dict[str, Any], run: dict[str, Any]) -> str:
    a = s["agents"]
    return (
        f"Run #{s['run_id']}: {s['status']}\n"
        f"  agents    {a['succeeded']} succeeded, {a['failed']} failed, {a['skipped']} skipped "
        f"of {a['total']}\n"
        f"  findings  {s['findings']}\n"
        f"  cost      ${s['cost_usd']:.6f}\n"
        f"  report    {run['report_version'] or 'none'}"
    )


def cmd_launch(client: Client, args: argparse.Namespace) -> int:
    if bool(args.target) == bool(args.upload):
        raise SystemExit("harness: give --target (on the server) or --upload (a folder or archive)")
    try:
        run = client.launch(launch_body(args), Path(args.upload) if args.upload else None)
    except ApiError as exc:
        if args.json:
            print(json.dumps({"status": "refused", "reason": str(exc), "field": exc.field}))
        where = f" ({exc.field})" if exc.field else ""
        say(f"Launch refused{where}: {exc}")
        return REFUSED
    page = f"{client.url}{run['url']}"
    say(f"Run #{run['id']} launched: {run['playbook']} on {run['target']} — {page}")
    if not args.wait:
        print(json.dumps(run["summary"]) if args.json else run["id"])
        return 0
    return cmd_wait(client, args, run["id"])


def cmd_wait(client: Client, args: argparse.Namespace, run_id: int | None = None) -> int:
    run, held = follow(client, run_id or args.run, args.timeout, args.poll)
    return outcome(client, run, held, args)


def cmd_export(client: Client, args: argparse.Namespace) -> int:
    version = args.version or client.get(f"/api/v1/runs/{args.run}/")["report_version"]
    if version is None:
        say(f"Run #{args.run} has no report yet.")
        return REFUSED
    data = client.export(args.run, version, args.format)
    if args.output:
        Path(args.output).write_bytes(data)
        say(f"Report v{version} of run #{args.run} written to {args.output}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="harness",
        description="Launch an audit on an Agent Harness server, follow it, fetch its SARIF.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--url", help="The server (default: $HARNESS_URL). The token: $HARNESS_TOKEN.")
    sub = top.add_subparsers(dest="command", required=True)

    def following(p: argparse.ArgumentParser) -> None:
        p.add_argument("--timeout", type=float, default=3600, help="Seconds (default 3600).")
        p.add_argument("--poll", type=float, default=2.0, help="Seconds between looks.")
        p.add_argument("--sarif", metavar="FILE", help="Write the report's SARIF here.")
        p.add_argument("--json", action="store_true", help="The launch_run --json summary.")

    launch = sub.add_parser("launch", help="Launch a run (and --wait for it).")
    launch.add_argument("--playbook", required=True)
    where = launch.add_mutually_exclusive_group()
    where.add_argument("--target", help="A target on the server (GET /api/v1/targets/).")
    where.add_argument("--upload", metavar="PATH", help="A folder (zipped) or an archive.")
    launch.add_argument("--title", default="")
    launch.add_argument("--provider")
    launch.add_argument("--model")
    launch.add_argument("--max-concurrency", type=int)
    launch.add_argument("--budget-usd")
    launch.add_argument("--max-depth", type=int)
    launch.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    launch.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    launch.add_argument("--no-default-excludes", action="store_true")
    launch.add_argument("--hold-agents", action="store_true")
    launch.add_argument("--wait", action="store_true", help="Follow the run to its end.")
    following(launch)

    wait = sub.add_parser("wait", help="Follow a run to its end.")
    wait.add_argument("run", type=int)
    following(wait)

    export = sub.add_parser("export", help="A report as md, json or sarif.")
    export.add_argument("run", type=int)
    export.add_argument("--format", choices=["md", "json", "sarif"], default="sarif")
    export.add_argument("--version", type=int, help="Default: the latest.")
    export.add_argument("-o", "--output", help="Default: stdout.")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    client = Client.from_env(args.url)
    commands = {"launch": cmd_launch, "wait": cmd_wait, "export": cmd_export}
    try:
        return commands[args.command](client, args)
    except ApiError as exc:
        say(f"harness: {exc} (HTTP {exc.status})")
        return REFUSED
    except TimeoutError as exc:
        say(f"harness: {exc}")
        return REFUSED
    except OSError as exc:
        say(f"harness: cannot reach {client.url}: {exc}")
        return REFUSED
