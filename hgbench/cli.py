"""The ``hgbench`` command line: a thin typer layer over the library.

Every command parses its options, calls one library function and prints; errors in the
user's input (unknown variant, unreadable dataset, malformed YAML) exit with status 2 and a
message that names the file or option and the fix.
"""

from __future__ import annotations

import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from hgbench.config import ConfigError
from hgbench.data import DEFAULT_DATASET, DatasetError
from hgbench.results import DEFAULT_RESULTS_DIR

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, profile and compare stacked-hourglass pose networks.")
# Wide tables stay readable when the output is a file or a CI log (rich assumes 80 columns there).
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)

ResultsOpt = typer.Option(DEFAULT_RESULTS_DIR, "--results", help="Results folder (records, checkpoints).")
DatasetOpt = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset: synthetic (embedded, no download), lspet or lsp.")
DataRootOpt = typer.Option(None, "--data-root", help="Dataset folder (lspet/lsp: joints.mat and images/).")


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@contextmanager
def _user_errors():
    """Turn the library's input errors into a clear message and exit status 2."""
    try:
        yield
    except (ConfigError, DatasetError, KeyError, ValueError, FileNotFoundError) as e:
        _fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@app.command()
def variants(
    num_joints: int = typer.Option(16, help="Heatmaps per network for the parameter count (16: MPII, as the papers)."),
    input_size: int = typer.Option(256, help="Input side in pixels for the GMACs."),
) -> None:
    """List the registered variants: stacks, block, source paper, parameters and GMACs."""
    from hgbench.profile.complexity import count_macs, count_parameters
    from hgbench.registry import list_variants

    with _user_errors():
        specs = list_variants()
    table = Table(title=f"hgbench variants ({num_joints} joints, input {input_size}x{input_size})")
    for col in ("name", "stacks", "block", "features", "modules/level", "source", "overrides", "parameters", "GMACs (fvcore)"):
        table.add_column(col, justify="right" if col in ("stacks", "features", "modules/level", "parameters", "GMACs (fvcore)") else "left")
    for spec in specs:
        a = spec.architecture
        model = spec.build(num_joints, input_size=input_size)
        macs = count_macs(model, (1, 3, input_size, input_size))
        source = f"{spec.source.cite or spec.source.paper} ({spec.source.seed})"
        table.add_row(spec.name, str(a.num_stacks), a.block, str(a.num_features), str(a.num_modules), source,
                      spec.overrides or "-", f"{count_parameters(model):,}", f"{macs.fvcore_gmacs:.2f}")
    console.print(table)


def _train_many(names: Optional[str], protocol: str, dataset: str, data_root: Optional[Path], results: Path, force: bool) -> list[dict]:
    from hgbench.protocol import load_protocol
    from hgbench.registry import select_variants
    from hgbench.train import train_variant

    with _user_errors():
        proto = load_protocol(protocol)
        specs = select_variants(names)
    records = []
    with _progress() as progress:
        for spec in specs:
            task = progress.add_task(f"train {spec.name}", total=None, status="")

            def on_event(event: str, info: dict, task=task) -> None:
                if event == "start":
                    progress.update(task, total=info["total_steps"], completed=info["done_steps"])
                elif event == "step":
                    progress.update(task, advance=1, status=f"loss {info['loss']:.2e}")
                elif event == "validate":
                    progress.update(task, status=f"epoch {info['epoch']} PCK {info['mean']:.1f}%")

            with _user_errors():
                rec = train_variant(spec, proto, dataset, data_root, results, force=force, progress=on_event)
            if rec.get("skipped"):
                progress.update(task, total=1, completed=1, status="complete run found, skipped (--force retrains)")
            records.append(rec)
    return records


def _print_runs(records: list[dict]) -> None:
    table = Table(title="training runs")
    for col in ("variant", "dataset", "protocol", "training time (min)", "mean PCK@0.2 (%)", "record"):
        table.add_column(col)
    for r in records:
        mean = (r.get("final") or {}).get("mean")
        table.add_row(r["variant"], r["dataset"], r["protocol"], f"{r['train_time_s'] / 60:.2f}",
                      "—" if mean is None else f"{mean:.1f}", r.get("_path", ""))
    console.print(table)


@app.command("train-all")
def train_all(
    protocol: str = typer.Option(..., "--protocol", help="Protocol name (variants/protocols/*.yaml) or a YAML path."),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    variants_: Optional[str] = typer.Option(None, "--variants", help="Comma-separated variant names (default: all)."),
    results: Path = ResultsOpt,
    force: bool = typer.Option(False, help="Retrain variants whose run is already complete."),
) -> None:
    """Train every registered variant (or a selection) under one protocol."""
    _print_runs(_train_many(variants_, protocol, dataset, data_root, results, force))


@app.command()
def train(
    variant: str = typer.Argument(..., help="Registered variant name."),
    protocol: str = typer.Option(..., "--protocol", help="Protocol name or YAML path."),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    results: Path = ResultsOpt,
    force: bool = typer.Option(False, help="Retrain even if the run is complete."),
) -> None:
    """Train one variant under a protocol."""
    _print_runs(_train_many(variant, protocol, dataset, data_root, results, force))


@app.command()
def evaluate(
    checkpoint: Path = typer.Argument(..., help="A checkpoint.pt written by train."),
    dataset: Optional[str] = typer.Option(None, help="Dataset (default: the one it was trained on)."),
    data_root: Optional[Path] = DataRootOpt,
    split: str = typer.Option("val", help="Split: train, val or all."),
    threshold: float = typer.Option(0.2, help="PCK threshold as a fraction of the torso size."),
) -> None:
    """Evaluate a checkpoint on a split: per-joint PCK, written as an eval record beside it."""
    import dataclasses

    from hgbench.data import make_dataset
    from hgbench.evaluate import evaluate_pck
    from hgbench.results import write_record
    from hgbench.train import load_checkpoint

    with _user_errors():
        model, ckpt = load_checkpoint(checkpoint)
        name = dataset or ckpt["dataset"]
        p = ckpt["protocol"]
        ds = make_dataset(name, data_root, split, input_size=p["input_size"], output_size=p["output_size"], sigma=p["heatmap_sigma"])
        if ds.keypoints.num_joints != ckpt["num_joints"]:
            _fail(f"{checkpoint}: the model has {ckpt['num_joints']} joints, dataset {name!r} has {ds.keypoints.num_joints}")
    with _progress() as progress:
        task = progress.add_task(f"evaluate {ckpt['variant']}", total=len(ds), status="")
        result = evaluate_pck(model, ds, threshold=threshold, progress=lambda n: progress.update(task, advance=n),
                              supervision=ckpt["spec"]["supervision"], skips=ckpt["spec"].get("eval_skips", True))
    table = Table(title=f"{ckpt['variant']} on {name}/{split}: PCK@{threshold:g} (%), {len(ds)} persons")
    for g in result.groups:
        table.add_column(g)
    table.add_column("Mean")
    table.add_row(*[f"{v:.1f}" for v in result.groups.values()], f"{result.mean:.1f}")
    console.print(table)
    console.print(f"convention: {result.convention}")
    from hgbench.provenance import collect_provenance

    out = checkpoint.parent / f"eval-{name}-{split}.json"
    write_record(out, "eval", {"variant": ckpt["variant"], "dataset": name, "split": split, "checkpoint": str(checkpoint),
                               "result": dataclasses.asdict(result), "provenance": collect_provenance()})
    console.print(f"record: {out}")


@app.command()
def profile(
    variants_: Optional[str] = typer.Option(None, "--variants", help="Comma-separated variant names (default: all)."),
    backend: str = typer.Option("eager,torchscript", help="Comma-separated backends: eager, torchscript, tensorrt."),
    batch_size: str = typer.Option("1", help="Batch size(s), comma-separated."),
    input_size: int = typer.Option(256, help="Input side in pixels."),
    num_joints: Optional[int] = typer.Option(None, help="Heatmaps per network (default: as trained in --results, else 16)."),
    threads: Optional[int] = typer.Option(None, help="CPU threads (default: torch's default)."),
    min_time_s: float = typer.Option(1.0, help="Time each setting for at least this many seconds."),
    min_iters: int = typer.Option(10, help="...and at least this many runs."),
    warmup: int = typer.Option(3, help="Untimed warm-up runs."),
    results: Path = ResultsOpt,
) -> None:
    """Measure parameters, MACs (fvcore and thop) and latency of every variant on this machine."""
    from hgbench.profile import complexity_record, get_backend, profile_model, save_profile_record
    from hgbench.provenance import collect_provenance
    from hgbench.registry import select_variants
    from hgbench.results import iter_records

    with _user_errors():
        specs = select_variants(variants_)
        backends = _split(backend)
        for b in backends:
            reason = get_backend(b).available()
            if reason is not None:
                _fail(f"backend {b!r} is not available here: {reason}")
        sizes = [int(s) for s in _split(batch_size)]
        if not sizes or min(sizes) < 1:
            raise ValueError(f"--batch-size: expected positive integers, got {batch_size!r}")

    trained_joints: dict[str, set[int]] = {}
    if num_joints is None and results.is_dir():
        for _, rec in iter_records(results, kind="train"):
            if isinstance(rec, dict) and rec.get("complete"):
                trained_joints.setdefault(rec["variant"], set()).add(rec["num_joints"])
    provenance = collect_provenance()
    jobs = [(s, j) for s in specs for j in sorted(trained_joints.get(s.name) or {num_joints or 16})]
    rows = []
    with _progress() as progress:
        task = progress.add_task("profile", total=len(jobs) * len(backends) * len(sizes), status="")
        for spec, joints in jobs:
            model = spec.build(joints, input_size=input_size)
            divisor = model.input_divisor
            if input_size % divisor:
                _fail(f"--input-size {input_size}: must be a multiple of {divisor} for {spec.name}")
            progress.update(task, status=f"{spec.name}: counting MACs")
            complexity = complexity_record(model, input_size)
            for b in backends:
                for bs in sizes:
                    progress.update(task, status=f"{spec.name} {b} batch {bs}")
                    body = profile_model(model, variant=spec.name, num_joints=joints, backend=b, batch_size=bs,
                                         input_size=input_size, threads=threads, warmup_iters=warmup,
                                         min_iters=min_iters, min_time_s=min_time_s, complexity=complexity)
                    path = save_profile_record(body, results, provenance)
                    rows.append((body, path))
                    progress.update(task, advance=1)
    table = Table(title=f"profile on {socket.gethostname()} (input {input_size}x{input_size})")
    for col in ("variant", "joints", "backend", "batch", "parameters", "GMACs fvcore", "GMACs thop", "p50 (ms)", "p90 (ms)", "status"):
        table.add_column(col)
    for body, _ in rows:
        lat = body["latency_ms"] or {}
        fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        table.add_row(body["variant"], str(body["num_joints"]), body["backend"], str(body["batch_size"]),
                      f"{body['parameters']:,}", fmt(body["gmacs_fvcore"]), fmt(body["gmacs_thop"]),
                      fmt(lat.get("p50_ms")), fmt(lat.get("p90_ms")), body["status"] if body["status"] == "ok" else f"error: {body['error']}")
    console.print(table)
    console.print(f"records: {results / 'profile' / provenance['hostname']}")
    if any(body["status"] != "ok" for body, _ in rows):
        raise typer.Exit(1)


@app.command()
def report(
    results: Path = ResultsOpt,
    out: Optional[Path] = typer.Option(None, help="Markdown path (CSV written beside it). Default: <results>/report.md"),
    batch_size: int = typer.Option(1, help="Report latency at this batch size."),
    input_size: int = typer.Option(256, help="Report latency and GMACs at this input size."),
    host: Optional[str] = typer.Option(None, help="Use the profile records of this host (default: this machine's)."),
) -> None:
    """Join training, accuracy and cost records into one Markdown table and one CSV."""
    from hgbench.report import build_report, write_report

    if not results.is_dir():
        _fail(f"{results}: no such results folder; run `hgbench train-all` and `hgbench profile` first, or pass --results")
    rep = build_report(results, batch_size=batch_size, input_size=input_size, host=host)
    md, csv = write_report(rep, out or results / "report.md")
    console.print(rep.to_markdown())
    console.print(f"written: {md} and {csv}")


if __name__ == "__main__":  # pragma: no cover
    app()
