"""What the command line prints: the consoles, the one-line error and its exit status, progress
bars, and one printer per command's result (rich tables). Only :mod:`hgbench.cli` imports it;
the library returns data, never prints.

Exit statuses: 0 done; 1 a measurement or job failed, or a fault of the machine (disk full,
read-only folder, network stalled); 2 bad input (an option, a file, a field), said in one line
before any work where it can be checked up front.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timezone
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

# Wide tables stay readable when the output is a file or a CI log (rich assumes 80 columns there).
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=10_000)
DEBUG = {"on": False}
"""``hgbench --debug``: show the traceback of an error instead of its one line."""


def fail(message: str, code: int = 2) -> None:
    """Print ``error: <message>`` on one line to stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(' '.join(str(message).split()))}", soft_wrap=True)
    raise typer.Exit(code)


def _os_message(e: OSError) -> str:
    """An ``OSError`` in words: the library's own message, or ``<file>: <what the system said>``
    (without Python's ``[Errno N]``)."""
    if e.errno is None or not e.strerror:
        return str(e)
    return f"{e.filename}: {e.strerror}" if e.filename else e.strerror


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's input errors into one line and exit status 2, and faults of the
    machine (:func:`hgbench.paths.is_machine_fault`: a full disk, a read-only folder, a stalled
    or refused network connection) into one line and exit status 1."""
    from hgbench.config import ConfigError
    from hgbench.data import DatasetError
    from hgbench.paths import MachineFaultError, is_machine_fault
    from hgbench.records import RecordError

    try:
        yield
    except typer.Exit:
        raise
    except MachineFaultError as e:  # before the input errors: a stalled download is a DatasetError too
        if DEBUG["on"]:
            raise
        fail(_os_message(e), code=1)
    except (ConfigError, DatasetError, RecordError, KeyError, ValueError) as e:
        if DEBUG["on"]:
            raise
        fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
    except OSError as e:
        if DEBUG["on"]:
            raise
        if is_machine_fault(e):
            fail(f"{_os_message(e)}; free space or give a writable folder, then run the same command again "
                 "(nothing earlier was replaced)", code=1)  # fmt: skip
        if isinstance(e, (FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError)):
            hint = "" if e.errno is None else "; check the path (a file where a folder is needed, or the reverse)"
            fail(_os_message(e) + hint)
        raise


def progress_bar() -> Progress:
    """A progress bar with a status column (``status=`` field of each task)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )  # fmt: skip


@contextmanager
def counting(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar (:func:`progress_bar`) for a count whose total is learnt on the way: yields
    ``progress(done, total)``."""
    with progress_bar() as progress:
        task = progress.add_task(description, total=None, status="")
        yield lambda done, total: progress.update(task, completed=done, total=total)


@contextmanager
def stepping(description: str, total: int, status: str) -> Iterator[Callable[[str, bool], None]]:
    """A progress bar (:func:`progress_bar`) of ``total`` steps: yields ``progress(label, step)``,
    which advances one step when ``step`` is true, else shows ``label`` as the status."""
    with progress_bar() as progress:
        task = progress.add_task(description, total=total, status=status)
        yield lambda label, step: progress.update(task, **({"advance": 1} if step else {"status": label}))


def say(text: str, err: bool = False) -> None:
    """Print ``text`` as it is (no markup), to stdout or stderr."""
    (err_console if err else console).print(text, markup=False, highlight=False, soft_wrap=True)


def _fmt(v: Any, spec: str = ".2f") -> str:
    return "—" if v is None or v != v else format(v, spec)


def print_variants(rows: list[dict], num_joints: int, input_size: int) -> None:
    """The registry table of ``hgbench variants``."""
    table = Table(title=f"hgbench variants ({num_joints} joints, input {input_size}x{input_size})")
    cols = ("name", "stacks", "block", "features", "modules/level", "source", "overrides", "parameters", "GMACs")
    for col in cols:
        table.add_column(
            col, justify="right" if col in ("stacks", "features", "modules/level", "parameters", "GMACs") else "left"
        )
    for r in rows:
        table.add_row(r["name"], str(r["stacks"]), r["block"], str(r["features"]), str(r["modules"]), r["source"],
                      r["overrides"] or "-", f"{r['parameters']:,}", f"{r['gmacs']:.2f}")  # fmt: skip
    console.print(table)


def print_train_records(records: list) -> None:
    """The runs ``hgbench train``/``train-all`` trained or found complete (rank 0 alone prints
    them when torchrun or srun started several processes)."""
    from hgbench.train.distributed import dist_info_from_env

    if dist_info_from_env().rank != 0:
        return
    table = Table(title="training runs")
    for col in ("variant", "dataset", "protocol", "training time (min)", "validation accuracy, Mean (%)", "record"):
        table.add_column(col)
    labels = {"pck": "PCK", "pckh": "PCKh", "pck_heatmap": "PCK (heatmap/10)"}
    for r in records:
        final = r.get("final") or {}
        mean, ci = final.get("mean"), final.get("mean_ci")
        metric = f"{labels.get(final.get('metric', 'pck'), final.get('metric'))}@{final.get('threshold', 0.2):g}"
        acc = "—" if mean is None else f"{metric} {mean:.1f}" + (f" ({ci[0]:.1f}–{ci[1]:.1f})" if ci else "")
        table.add_row(
            r["variant"], r["dataset"], r["protocol"], f"{r['train_time_s'] / 60:.2f}", acc, str(r.path or "")
        )
    console.print(table)


def print_run_statuses(statuses: list, empty: str | None = "no training run") -> None:
    """``hgbench runs``: each run's state, job, log, last step and checkpoint time (``empty``, if
    any, when there is none)."""
    if not statuses:
        return None if empty is None else say(empty)
    table = Table(title="training runs")
    for col in ("variant", "dataset", "protocol", "state", "detail", "step", "checkpoint (UTC)", "job", "log"):
        table.add_column(col)
    style = {"complete": "green", "running": "cyan", "queued": "blue", "interrupted": "yellow", "failed": "red"}
    now = datetime.now(timezone.utc)
    for s in statuses:
        step = "—" if s.step is None else (f"{s.step}/{s.total_steps}" if s.total_steps else str(s.step))
        when = (
            "—"
            if s.checkpoint_time is None
            else (
                f"{s.checkpoint_time:%Y-%m-%d %H:%M:%S} ({(now - s.checkpoint_time).total_seconds() / 60:.0f} min ago)"
            )
        )
        table.add_row(s.variant, s.dataset, s.protocol, f"[{style[s.state]}]{s.state}[/]", s.detail, step, when,
                      s.job_id or "—", str(s.log) if s.log else "—")  # fmt: skip
    console.print(table)
    for s in statuses:
        if s.state == "failed" and s.error_tail:
            console.print(f"[red]{s.variant}[/] ({s.error_log}, last lines):")
            say("\n".join("    " + line for line in s.error_tail))


def run_training(plan, launcher: str = "local", gpus: str | None = None, opts=None, wait: bool = False) -> None:
    """Run a checked training plan (:func:`hgbench.train.launch.plan_training`) with its launcher
    (:func:`hgbench.train.launch.launch_training`) and print what happened; exit 1 when a run did
    not complete (the launchers elsewhere: every run waited for must be complete) or failed for a
    fault of the machine, with a stop signal's status when training was interrupted.

    Raises:
        typer.Exit: after a Slurm or one-GPU-per-variant launch (0 every run complete, else 1), or
            on a failure (:func:`fail`).
    """
    from hgbench.train import TrainingInterrupted
    from hgbench.train.distributed import RankLostError
    from hgbench.train.launch import launch_training
    from hgbench.train.progress import TrainDisplay
    from hgbench.train.status import statuses_of

    try:
        with TrainDisplay(console) if launcher != "slurm" and gpus is None else nullcontext() as display, user_errors():
            launched = launch_training(plan, launcher, gpus, opts, wait, say, display)
    except (TrainingInterrupted, RankLostError) as e:
        fail(str(e), code=e.exit_code)
    if launched.folders is not None:  # elsewhere: how each run waited for ended
        statuses = statuses_of(plan.results, launched.folders)
        print_run_statuses(statuses, empty=None)
        complete = all(s.state == "complete" for s in statuses) and len(statuses) == len(launched.folders)
        raise typer.Exit(0 if complete else 1)
    print_train_records(launched.records)
    if launched.failed:
        fail("; ".join(f"{variant}: {why}" for variant, why in launched.failed), code=1)


def print_evaluation(ev) -> None:
    """The per-group table of ``hgbench evaluate`` (``ev``: :class:`hgbench.train.evaluation.Evaluation`)."""
    result, rec = ev.result, ev.record
    label = {"pck": "PCK", "pckh": "PCKh", "pck_heatmap": "PCK (heatmap/10)"}.get(result.metric, result.metric)
    flip_note = "flip test" if result.flip_test else "no flip test"
    table = Table(
        title=f"{rec.variant} on {rec.dataset}/{rec.split}: {label}@{result.threshold:g} (%), {ev.persons} persons, {flip_note}"
    )
    table.add_column("joints")
    for g in result.groups:
        table.add_column(g)
    table.add_column("Mean")
    table.add_row("all", *[f"{v:.1f}" for v in result.groups.values()], f"{result.mean:.1f}")
    if result.groups_ci:
        table.add_row("95 % interval", *[f"{lo:.1f}–{hi:.1f}" for lo, hi in (result.groups_ci[g] for g in result.groups)],
                      f"{result.mean_ci[0]:.1f}–{result.mean_ci[1]:.1f}" if result.mean_ci else "—")  # fmt: skip
    for kind, groups, mean, counts in (("visible", result.groups_visible, result.mean_visible, result.counts_visible),
                                       ("occluded", result.groups_occluded, result.mean_occluded, result.counts_occluded)):  # fmt: skip
        if groups is not None:
            table.add_row(f"{kind} (n={sum(counts.values())})", *[f"{v:.1f}" for v in groups.values()], f"{mean:.1f}")
    console.print(table)
    if result.num_skipped:
        console.print(f"[bold yellow]skipped {result.num_skipped} sample(s) with {len(result.skipped)} unreadable image(s)[/] "
                      "(--skip-bad-samples): " + "; ".join(f"{f} ({why})" for f, why in result.skipped[:5])
                      + (" ..." if len(result.skipped) > 5 else ""))  # fmt: skip
    if "mean_at_0.1" in result.extra:
        console.print(f"Mean PCKh@0.1: {result.extra['mean_at_0.1']:.2f} %")
    if "oks" in result.extra:
        console.print(
            "OKS on ground-truth boxes (pycocotools): "
            + ", ".join(f"{k} {v:.3f}" for k, v in result.extra["oks"].items())
        )
    if ev.deployed is not None:
        d = ev.deployed
        diff = d.difference
        pad = f", last batch padded to {d.batch_size}" if result.padded else ""
        console.print(f"deployed: {d.backend} {d.precision} batch {d.batch_size} on {d.device}{pad}; "
                      f"Mean minus eager fp32 on the same persons: {diff.mean:+.2f} points "
                      f"(95 % interval {diff.mean_ci[0]:+.2f} to {diff.mean_ci[1]:+.2f}; eager fp32 {d.reference.mean:.1f})")  # fmt: skip
    say(f"convention: {result.convention}")
    say(f"record: {rec.path}")


def setting_label(body: dict) -> str:
    """``hg1 j16 eager fp32+tf32 batch 1``: one profiled setting in words."""
    flags = ("+tf32" if body["tf32"] else "") + ("+cl" if body["channels_last"] else "")
    return f"{body['variant']} j{body['num_joints']} {body['backend']} {body['precision']}{flags} batch {body['batch_size']}"


def print_deployed(deployed) -> None:
    """The deployed accuracy of ``hgbench profile --evaluate`` (:class:`hgbench.train.deployed.DeployedRun`):
    per setting the artifact's mean accuracy with its interval and its difference to eager fp32."""
    table = Table(title="deployed accuracy: each setting's artifact on the checkpoint's validation split; "
                        "difference to eager fp32 on the same persons (points, 95 % paired interval)")  # fmt: skip
    for col in ("variant", "backend", "precision", "batch", "metric", "mean (%)", "95 % interval", "vs fp32", "95 % interval ",
                "padded", "record"):  # fmt: skip
        table.add_column(
            col, justify="left" if col in ("variant", "backend", "precision", "metric", "record") else "right"
        )
    for record, ev in deployed.evaluations:
        r, d = ev.result, (ev.deployed.difference if ev.deployed is not None else None)
        table.add_row(record.variant, record.backend, record.precision, str(record.batch_size), f"{r.metric}@{r.threshold:g}",
                      _fmt(r.mean, ".2f"), _interval(r.mean_ci), "0 (the checkpoint)" if d is None else _fmt(d.mean, "+.2f"),
                      "" if d is None else _interval(d.mean_ci), "yes" if r.padded else "no", str(ev.record.path))  # fmt: skip
    console.print(table)
    for record, why in deployed.left_out:
        say(
            f"note: {record.variant} {record.backend} {record.precision} batch {record.batch_size}: not evaluated ({why})"
        )
    for record, why in deployed.failed:
        say(f"error: {record.variant} {record.backend} {record.precision} batch {record.batch_size}: evaluation failed: {why}",
            err=True)  # fmt: skip


def _interval(ci) -> str:
    return "—" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def print_profile(run, plan, summary: bool = True) -> None:
    """The table, the records' folder, the timing windows and the warnings of ``hgbench profile``;
    with ``summary``, then where the sweep's time went (:func:`print_sweep_time`)."""
    from hgbench.records import repetition_range_pct

    prov, device, threads = run.provenance, plan.device.type, plan.threads
    where = prov["gpu_name"] if device == "cuda" else prov["cpu_model"]
    machine = prov.get("machine") or prov["hostname"]
    table = Table(title=f"profile on {machine}: {device} ({where}), {threads} thread{'' if threads == 1 else 's'}, "
                        f"input {plan.input_size}x{plan.input_size}; p50/p90/p99 per batch, GMACs per sample, "
                        "efficiency = roofline floor / p50")  # fmt: skip
    cols = ("variant", "joints", "backend", "precision", "batch", "parameters", "GMACs", "p50 (ms)", "p90 (ms)", "p99 (ms)",
            "p50 range over repetitions (%)", "throughput (samples/s)", "efficiency (%)", "numerics ok", "status")  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col in ("variant", "backend", "precision", "status") else "right")
    for body, _ in run.rows:
        lat = body["latency_ms"] or {}
        eff = (body["roofline"] or {}).get("efficiency")
        num = body["numerics"]
        ok = (
            "ref"
            if num is None and body["status"] == "ok" and body["backend"] == "eager"
            else ("—" if num is None else ("yes" if num.get("ok") else "NO"))
        )
        flags = ("+tf32" if body["tf32"] else "") + ("+cl" if body["channels_last"] else "")
        gflops = body.get("gflops_flop_counter")
        table.add_row(body["variant"], str(body["num_joints"]), body["backend"], body["precision"] + flags, str(body["batch_size"]),
                      _fmt(body["parameters"], ","), _fmt(None if gflops is None else gflops / 2), _fmt(lat.get("p50_ms")),
                      _fmt(lat.get("p90_ms")), _fmt(lat.get("p99_ms")), _fmt(repetition_range_pct(lat), ".1f"),
                      _fmt(body["throughput_samples_per_s"], ".1f"), _fmt(None if eff is None else 100 * eff, ".1f"), ok,
                      body["status"])  # fmt: skip
    console.print(table)
    for line in plan.conditions:
        say(f"note: {line}")
    say(f"records: {plan.results / 'profile' / machine}")
    windows = run.windows()
    if windows["repetitions"]:
        say(f"timing windows: {windows['quiet']} of {windows['repetitions']} repetitions timed while the calibration probes "
            f"said the machine was quiet ({windows['windows']} windows timed); the others kept their least disturbed window "
            "(latency_ms.windows)", err=windows["quiet"] != windows["repetitions"])  # fmt: skip
    for w in run.warnings:
        say(f"warning: {w}", err=True)
    if run.failed:
        say(f"{len(run.failed)} of {len(run.rows)} settings failed (recorded with the reason):", err=True)
        for body in run.failed:
            kept = f" (not recorded: {body['not_written']})" if body.get("not_written") else ""
            say(f"  {setting_label(body)}: {body['error']}{kept}", err=True)
    if summary:
        print_sweep_time(run)


def sweep_time_line(time_s: dict, wall_s: float) -> str:
    """One line: the wall time, the share inside timed windows (kept, and discarded as
    disturbed), then every other phase of ``time_s`` with time in it, largest first
    (:data:`hgbench.profile.timeline.PHASES`; a sweep record's ``time_s`` and ``wall_s``)."""
    timed, retimed = time_s.get("timed", 0.0), time_s.get("retimed", 0.0)
    share = 100 * (timed + retimed) / wall_s if wall_s > 0 else 0.0
    rest = sorted(
        ((s, name) for name, s in time_s.items() if name not in ("timed", "retimed") and s >= 0.05), reverse=True
    )
    parts = ", ".join(f"{name} {s:.1f}" for s, name in rest)
    return (f"time: {wall_s:.1f} s wall, {timed + retimed:.1f} s ({share:.0f} %) in timed windows ({timed:.1f} kept, "
            f"{retimed:.1f} discarded as disturbed); {parts} s")  # fmt: skip


def print_sweep_time(run) -> None:
    """Where the sweep's wall time went (:func:`sweep_time_line`), as its sweep record says, which
    variants share another's measurement of the same network, and where the record is."""
    if run.sweep is not None:
        say(sweep_time_line(run.sweep.time_s, run.sweep.wall_s))
        if run.sweep.shared_settings:
            shared = sorted({f"{r.variant} as {r.measured_as}" for r, _ in run.rows if r.measured_as})
            say(
                f"{run.sweep.shared_settings} setting(s) measured once for variants that build the same network "
                f"(measured_as in their records): {', '.join(shared)}"
            )
        say(f"sweep record: {run.sweep.path}")


def print_report(rep, written: list, results: list) -> None:
    """The Pareto rows, what was read and skipped, and what ``hgbench report`` wrote."""
    from hgbench.analysis.labels import header
    from hgbench.analysis.tables import skipped_by_reason

    front = rep.cost[rep.cost["pareto_optimal"]]
    table = Table(
        title=f"Pareto-optimal rows (accuracy vs {header(rep.pareto_cost)}, per machine, dataset, batch size, input size)"
    )
    for col in ("machine", "device", "dataset/split", "metric", "batch", "input (px)", "variant", "backend", "precision",
                header("accuracy_pct"), header("latency_p50_ms")):  # fmt: skip
        table.add_column(col)
    for _, r in front.iterrows():
        table.add_row(str(r["machine"]), f"{r['device']} {r['device_name'] or ''}", f"{r['dataset']}/{r['split']}", str(r["metric"]),
                      str(r["batch_size"]), str(r["input_size_px"]), r["variant"], r["backend"], r["precision"],
                      _fmt(r["accuracy_pct"]), _fmt(r["latency_p50_ms"]))  # fmt: skip
    console.print(table if len(front) else "No Pareto-optimal row (no profiled variant has an accuracy record).")
    say(f"{rep.files} record files read from {', '.join(map(str, results))}: {len(rep.cost)} accuracy-vs-cost rows, "
        f"{len(rep.per_joint)} per-joint rows, {len(rep.failed)} failed measurements, {len(rep.skipped)} records skipped.")  # fmt: skip
    for _, r in rep.failed.iterrows():
        say(
            f"failed measurement: {r['variant']} {r['backend']} {r['precision']} batch {r['batch_size']} on {r['machine']}: {r['error']}"
        )
    for reason, paths in skipped_by_reason(rep.skipped):
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        say(f"skipped {len(paths)} x {reason}: {', '.join(paths[:3])}{more}")
    for note in rep.notes:
        say(f"note: {note}")
    pngs = [p for p in written if p.suffix == ".png"]
    say("written: " + ", ".join(str(p) for p in written if p.suffix != ".png")
        + (f" and {len(pngs)} plots in {pngs[0].parent}" if pngs else ""))  # fmt: skip


_CHECK_STYLE = {"ok": "green", "missing": "red", "incomplete": "yellow", "optional": "dim"}


def print_score(text: str, notes: list[str]) -> None:
    """``hgbench score``: the table or curve as it is on stdout, the notes on stderr."""
    typer.echo(text, nl=False)
    for note in notes:
        say(note, err=True)


def print_schema(kind: str) -> None:
    """``hgbench schema KIND``: the JSON Schema (:func:`hgbench.config.json_schema`) of a ``variant``
    or ``protocol`` file, as JSON on stdout.

    Raises:
        typer.Exit: status 2 for another ``kind`` (:func:`fail`).
    """
    from hgbench.config import SCHEMA_KINDS, json_schema

    if kind not in SCHEMA_KINDS:
        fail(f"schema KIND: {kind!r} is not one of {', '.join(SCHEMA_KINDS)}; run e.g. hgbench schema variant")
    typer.echo(json.dumps(json_schema(kind), indent=2))


def print_data_check(reports: list) -> None:
    """``hgbench data check``: per dataset, what the loaders need and what is there."""
    table = Table(title="data check")
    for col in ("dataset", "folder", "item", "status", "detail"):
        table.add_column(col)
    for rep in reports:
        for i, row in enumerate(rep.rows):
            table.add_row(rep.dataset if i == 0 else "", str(rep.root) if i == 0 else "", row.item,
                          f"[{_CHECK_STYLE[row.status]}]{row.status}[/]", row.detail)  # fmt: skip
    console.print(table)


def data_check_verdict(reports: list, data_dir, asked: bool) -> None:
    """``hgbench data check``'s verdict on ``reports`` (:func:`hgbench.data.download.check`): the
    datasets asked for (``asked``), else those present, must be complete.

    Raises:
        typer.Exit: status 1 when one of them is incomplete, or none is found (:func:`fail`).
    """
    requested = reports if asked else [r for r in reports if r.present]
    if not requested:
        fail(f"no dataset found under {data_dir}; fetch one with `hgbench data download NAME --to {data_dir}`", code=1)
    incomplete = [r.dataset for r in requested if not r.complete]
    if incomplete:
        fail(f"incomplete: {', '.join(incomplete)}", code=1)
    say(f"complete: {', '.join(r.dataset for r in requested)}")


def download_display():
    """A progress display for :func:`hgbench.data.download.download`: ``(progress, on_event)``."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console)  # fmt: skip
    tasks: dict[str, int] = {}
    totals: dict[str, int | None] = {}

    def on_event(event: str, info: dict) -> None:
        name = info["archive"].name
        if event in ("skip", "restart", "retry"):
            progress.console.print(f"{name}: {info['reason']}", markup=False)
            return
        if name not in tasks:
            if event == "done":  # skipped: nothing was fetched, the line above said why
                return
            tasks[name] = progress.add_task(name, total=None, status="")
        task = tasks[name]
        if event == "start":
            totals[name] = info["total"]
            progress.update(task, total=info["total"], completed=info["resumed_from"],
                            status=f"resumed at {info['resumed_from']:,} bytes" if info["resumed_from"] else "")  # fmt: skip
        elif event == "bytes":
            progress.advance(task, info["n"])
        elif event == "verified":
            progress.update(task, status=info["detail"])
        elif event == "extract":
            progress.update(task, status="extracting")
        elif event == "done":
            r = info["result"]
            got = next(t.completed for t in progress.tasks if t.id == task)
            done = totals.get(name) or got or 1  # no byte count: size unknown, or the archive was reused
            progress.update(task, total=done, completed=done, status=f"{r.status}: {r.verified}")

    return progress, on_event


def print_downloads(results: list, to) -> None:
    """What ``hgbench data download`` fetched, and its warnings."""
    table = Table(title=f"downloads under {to}")
    for col in ("archive", "status", "verification", "location", "source of size/checksum"):
        table.add_column(col)
    for r in results:
        table.add_row(r.archive.name, r.status, r.verified, str(r.location), r.archive.checksum_source)
    console.print(table)
    for r in results:
        for w in r.warnings:
            say(f"warning: {w}", err=True)


def print_comparison(comp, show_all: bool = False, metrics=None, sides: bool = True) -> None:
    """A comparison of two profile runs (``hgbench compare``, ``hgbench latency-check``)."""
    from hgbench.analysis.compare import comparison_table

    if sides:
        for side, text in comp.sides.items():
            say(f"{side}: {text}")
    console.print(comparison_table(comp, show_all=show_all, metrics=metrics))
    for path, why in comp.skipped:
        say(f"skipped {path}: {why}")
    for warning in comp.warnings:
        say(f"warning: {warning}")


def comparison_verdict(comp, show_all: bool = False) -> None:
    """``hgbench compare``: the comparison (:func:`print_comparison`), its summary line, and exit
    status 1 on a regression.

    Raises:
        typer.Exit: status 1 when a variant regressed (:func:`fail`).
    """
    from hgbench.analysis.compare import summary_line

    print_comparison(comp, show_all=show_all)
    say(summary_line(comp))
    if comp.failed:
        fail(f"regression: {', '.join(comp.regressed_variants())}", code=1)


def gate_verdict(final, attempts: list, folder) -> None:
    """``hgbench latency-check``: each attempt's comparison (p50 and parameters), where this run's
    records are, and exit status 1 when a regression held in every attempt.

    Raises:
        typer.Exit: status 1 on a confirmed latency regression (:func:`fail`).
    """
    from hgbench.analysis.compare import summary_line

    for i, comp in enumerate(attempts):
        if i:
            say(f"re-measured: {', '.join(sorted({r.key.variant for r in comp.rows if r.current is not None}))}")
        print_comparison(comp, show_all=True, metrics=("p50", "parameters"), sides=False)
    say(f"records: {folder}; {summary_line(final)}")
    if final.failed:
        fail(f"latency regression (every attempt): {', '.join(final.regressed_variants())}", code=1)


def print_profile_jobs(jobs: list) -> None:
    """``hgbench runs``: each profile job (:class:`hgbench.profile.launch.ProfileJobStatus`): job,
    partition, machine label, state, detail, log; a failed job's last error lines. Nothing without jobs."""
    if not jobs:
        return
    table = Table(title="profile jobs")
    for col in ("job", "partition", "machine label", "state", "detail", "log"):
        table.add_column(col)
    style = {"complete": "green", "running": "cyan", "pending": "blue", "failed": "red"}
    for j in jobs:
        table.add_row(j.job_id, j.partition, j.label, f"[{style.get(j.state, 'white')}]{j.state}[/]", escape(j.detail),
                      str(j.log) if j.log else "—")  # fmt: skip
    console.print(table)
    for j in jobs:
        if j.state == "failed" and j.error_tail:
            console.print(f"[red]{escape(j.label)}[/] (job {j.job_id}, {j.error_log}, last lines):")
            say("\n".join("    " + line for line in j.error_tail))


def run_profile_jobs(options: dict, launch) -> None:
    """``hgbench profile --launcher slurm``: submit one job per partition
    (:func:`hgbench.profile.launch.launch_profile`), saying each job and, with ``--wait``, each
    state change; then name every job that failed (partition, label, job id, log).

    Raises:
        typer.Exit: 0 submitted (or, with ``--wait``, every job complete), 1 a job failed, 2 bad
            input (:func:`user_errors`: nothing submitted).
    """
    from hgbench.profile.launch import launch_profile

    with user_errors():
        statuses = launch_profile(options, launch, say=say)
    failed = [s for s in statuses if s.state != "complete"]
    for s in failed:
        say(
            f"failed: {s.label} (partition {s.partition}), job {s.job_id}: {s.detail}; log {s.error_log or s.log}",
            err=True,
        )
    if statuses:
        done = len(statuses) - len(failed)
        say(f"{done} of {len(statuses)} profile jobs complete; hgbench report --results {options['results']}")
    raise typer.Exit(1 if failed else 0)
