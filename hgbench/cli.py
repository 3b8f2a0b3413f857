"""The ``hgbench`` command line: a thin typer layer over the library.

Every command parses its options, calls one library function and prints; errors in the
user's input (unknown variant, unreadable dataset, malformed YAML) exit with status 2 and a
message that names the file or option and the fix.
"""

from __future__ import annotations

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
from hgbench.data.download import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from hgbench.paths import DEFAULT_RESULTS_DIR
from hgbench.models import create_model

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, profile and compare stacked-hourglass pose networks.")
# Wide tables stay readable when the output is a file or a CI log (rich assumes 80 columns there).
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)

ResultsOpt = typer.Option(DEFAULT_RESULTS_DIR, "--results", help="Results folder (records, checkpoints).")
DatasetOpt = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset: synthetic (embedded, no download), lspet or lsp.")
DataRootOpt = typer.Option(None, "--data-root", help="Dataset folder (lspet/lsp: joints.mat and images/).")


def _fail(message: str) -> None:
    from rich.markup import escape  # messages quote things like pip install 'hgbench[tensorrt]'

    err_console.print(f"[bold red]error:[/] {escape(message)}")
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
    from hgbench.profile.complexity import count_flops, count_parameters
    from hgbench.config import list_variants

    with _user_errors():
        specs = list_variants()
    table = Table(title=f"hgbench variants ({num_joints} joints, input {input_size}x{input_size})")
    for col in ("name", "stacks", "block", "features", "modules/level", "source", "overrides", "parameters", "GMACs"):
        table.add_column(col, justify="right" if col in ("stacks", "features", "modules/level", "parameters", "GMACs") else "left")
    for spec in specs:
        a = spec.architecture
        model = create_model(spec, num_joints, input_size=input_size)
        flops = count_flops(model, (1, 3, input_size, input_size))  # headline: torch flop_counter, MACs = FLOPs / 2
        source = f"{spec.source.cite or spec.source.paper} ({spec.source.seed})"
        table.add_row(spec.name, str(a.num_stacks), a.block, str(a.num_features), str(a.num_modules), source,
                      spec.overrides or "-", f"{count_parameters(model):,}", f"{flops.gmacs:.2f}")
    console.print(table)


def _train_many(names: Optional[str], protocol: str, dataset: str, data_root: Optional[Path], results: Path, force: bool) -> list[dict]:
    from hgbench.config import load_protocol
    from hgbench.config import select_variants
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
    for col in ("variant", "dataset", "protocol", "training time (min)", "validation accuracy, Mean (%)", "record"):
        table.add_column(col)
    labels = {"pck": "PCK", "pckh": "PCKh", "pck_heatmap": "PCK (heatmap/10)"}
    for r in records:
        final = r.get("final") or {}
        mean = final.get("mean")
        metric = f"{labels.get(final.get('metric', 'pck'), final.get('metric'))}@{final.get('threshold', 0.2):g}"
        table.add_row(r["variant"], r["dataset"], r["protocol"], f"{r['train_time_s'] / 60:.2f}",
                      "—" if mean is None else f"{metric} {mean:.1f}", r.get("_path", ""))
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
    threshold: Optional[float] = typer.Option(
        None, help="Threshold as a fraction of the dataset's normaliser (default: its metric's standard: PCK 0.2, PCKh 0.5, COCO's heatmap PCK 0.5)."),
    flip: Optional[bool] = typer.Option(
        None, "--flip/--no-flip", help="Flip test: average with the mirrored crop's heatmaps (default: the protocol's flip_test, on)."),
    skip_bad_samples: bool = typer.Option(
        False, "--skip-bad-samples", help="Leave out missing or corrupt images (counted and reported) instead of stopping with an error."),
) -> None:
    """Evaluate a checkpoint on a split: per-joint accuracy (the dataset's metric; visible vs
    occluded joints where it has a visibility flag), written as an eval record beside it."""
    import dataclasses

    from hgbench.data import make_dataset
    from hgbench.accuracy.evaluate import evaluate_pck
    from hgbench.records import write_record
    from hgbench.train import load_checkpoint

    with _user_errors():
        model, ckpt = load_checkpoint(checkpoint)
        name = dataset or ckpt["dataset"]
        p = ckpt["protocol"]
        ds = make_dataset(name, data_root, split, input_size=p["input_size"], output_size=p["output_size"], sigma=p["heatmap_sigma"],
                          sigma_occluded=p.get("heatmap_sigma_occluded"), bad_samples="skip" if skip_bad_samples else "error")
        if ds.keypoints.num_joints != ckpt["num_joints"]:
            _fail(f"{checkpoint}: the model has {ckpt['num_joints']} joints, dataset {name!r} has {ds.keypoints.num_joints}")
    flip_test = p.get("flip_test", True) if flip is None else flip
    with _progress() as progress, _user_errors():
        task = progress.add_task(f"evaluate {ckpt['variant']}", total=len(ds), status="")
        result = evaluate_pck(model, ds, threshold=threshold, progress=lambda n: progress.update(task, advance=n),
                              supervision=ckpt["spec"]["supervision"], skips=ckpt["spec"].get("eval_skips", True), flip_test=flip_test)
    label = {"pck": "PCK", "pckh": "PCKh", "pck_heatmap": "PCK (heatmap/10)"}.get(result.metric, result.metric)
    flip_note = "flip test" if result.flip_test else "no flip test"
    table = Table(title=f"{ckpt['variant']} on {name}/{split}: {label}@{result.threshold:g} (%), {len(ds)} persons, {flip_note}")
    table.add_column("joints")
    for g in result.groups:
        table.add_column(g)
    table.add_column("Mean")
    table.add_row("all", *[f"{v:.1f}" for v in result.groups.values()], f"{result.mean:.1f}")
    for kind, groups, mean, counts in (("visible", result.groups_visible, result.mean_visible, result.counts_visible),
                                       ("occluded", result.groups_occluded, result.mean_occluded, result.counts_occluded)):
        if groups is not None:
            table.add_row(f"{kind} (n={sum(counts.values())})", *[f"{v:.1f}" for v in groups.values()], f"{mean:.1f}")
    console.print(table)
    if result.num_skipped:
        console.print(f"[bold yellow]skipped {result.num_skipped} sample(s) with {len(result.skipped)} unreadable image(s)[/] "
                      "(--skip-bad-samples): " + "; ".join(f"{f} ({why})" for f, why in result.skipped[:5])
                      + (" ..." if len(result.skipped) > 5 else ""))
    if "mean_at_0.1" in result.extra:
        console.print(f"Mean PCKh@0.1: {result.extra['mean_at_0.1']:.2f} %")
    if "oks" in result.extra:
        console.print("OKS on ground-truth boxes (pycocotools): " + ", ".join(f"{k} {v:.3f}" for k, v in result.extra["oks"].items()))
    console.print(f"convention: {result.convention}")
    from hgbench.records.provenance import collect_provenance

    out = checkpoint.parent / f"eval-{name}-{split}.json"
    write_record(out, "eval", {"variant": ckpt["variant"], "dataset": name, "split": split, "checkpoint": str(checkpoint),
                               "result": dataclasses.asdict(result), "provenance": collect_provenance()})
    console.print(f"record: {out}")


@app.command()
def profile(
    variants_: Optional[str] = typer.Option(None, "--variants", help="Comma-separated variant names (default: all)."),
    backend: str = typer.Option("eager,torchscript", "--backend",
                                help="Comma-separated backends: eager, torchscript, compile, cudagraphs, onnxruntime, tensorrt."),
    precision: str = typer.Option("fp32", "--precision", help="Comma-separated precisions: fp32, fp16, bf16."),
    tf32: bool = typer.Option(False, "--tf32/--no-tf32", help="Allow TF32 matmuls and convolutions on CUDA (off: IEEE fp32)."),
    channels_last: bool = typer.Option(False, "--channels-last", help="Model and input in channels_last (NHWC) memory format."),
    compile_mode: str = typer.Option("default", "--compile-mode", help="torch.compile mode: default, reduce-overhead, max-autotune."),
    batch_size: str = typer.Option("1", "--batch-size", help="Batch size(s), comma-separated, e.g. 1,8,32."),
    input_size: int = typer.Option(256, "--input-size", help="Input side in pixels."),
    num_joints: Optional[int] = typer.Option(None, help="Heatmaps per network (default: as trained in --results, else 16)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the physical cores this process may use less one, at least 1; recorded)."),
    min_time_s: float = typer.Option(1.0, "--min-time-s", help="Time each setting for at least this many seconds..."),
    min_iters: int = typer.Option(10, "--min-iters", help="...and at least this many calls (over all repetitions)."),
    repetitions: int = typer.Option(3, "--repetitions", help="Split each setting's timing into this many repetitions, "
                                    "interleaved across the sweep (steadier medians on a drifting machine; 1: one block)."),
    quiet_attempts: Optional[int] = typer.Option(None, "--quiet-attempts", help="Time a repetition again, up to this many windows "
                                                 "(default 10), while the calibration probes around it say the machine was "
                                                 "disturbed (1: never retime)."),
    quiet_tolerance: Optional[float] = typer.Option(None, "--quiet-tolerance", help="A window is quiet when both probes are at "
                                                    "most this fraction above the run's quiet level (default 0.15)."),
    warmup: int = typer.Option(3, "--warmup", help="Untimed warm-up calls before each repetition..."),
    warmup_s: float = typer.Option(0.5, "--warmup-s", help="...and at least this many warm-up seconds before the first."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Device ceilings and backend artefacts (default: $HGBENCH_CACHE_DIR or ~/.cache/hgbench)."),
    refresh_ceilings: bool = typer.Option(False, "--refresh-ceilings", help="Measure the device's roofline ceilings again instead of using the cached ones."),
    results: Path = ResultsOpt,
) -> None:
    """Measure size, MACs/FLOPs, latency (p50/p90/p99), memory, numerics and roofline efficiency on this machine.

    One record per variant, backend, precision and batch size; a failing setting is recorded with its reason and
    the sweep goes on (exit 1 at the end); an unavailable backend or bad option stops before anything runs (exit 2).
    """
    import torch

    from hgbench.profile import RunSettings, default_threads, get_backend, get_ceilings
    from hgbench.profile.quiet import window_summary
    from hgbench.profile.roofline import default_cache_dir
    from hgbench.profile.sweep import Budget, run_sweep
    from hgbench.records.provenance import collect_provenance
    from hgbench.config import select_variants
    from hgbench.records import iter_records

    # Everything the user gave is checked before anything is profiled (exit 2, nothing written).
    with _user_errors():
        specs = select_variants(variants_)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"--device: expected cpu or cuda, got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device cuda: no CUDA device here (torch {torch.__version__}); "
                             "install a CUDA build of torch on a machine with an NVIDIA GPU, or pass --device cpu")
        dev = torch.device(device)
        backends = _split(backend)
        if not backends:
            raise ValueError("--backend: expected at least one backend name")
        for b in backends:
            reason = get_backend(b).available(dev)
            if reason is not None:
                _fail(f"backend {b!r} is not available on {device}: {reason}")
        cache = cache_dir if cache_dir is not None else default_cache_dir()
        settings_list = [RunSettings(precision=p, tf32=tf32, channels_last=channels_last, compile_mode=compile_mode,
                                     cache_dir=cache / "artefacts") for p in _split(precision)]
        if not settings_list:
            raise ValueError("--precision: expected at least one of fp32, fp16, bf16")
        try:
            sizes = [int(s) for s in _split(batch_size)]
        except ValueError:
            sizes = []
        if not sizes or min(sizes) < 1:
            raise ValueError(f"--batch-size: expected comma-separated positive integers, got {batch_size!r}")
        threads = default_threads() if threads is None else threads
        if (threads < 1 or min_iters < 1 or repetitions < 1 or (quiet_attempts is not None and quiet_attempts < 1)
                or min_time_s < 0 or warmup < 0 or warmup_s < 0 or (quiet_tolerance is not None and quiet_tolerance < 0)):  # fmt: skip
            raise ValueError("--threads, --min-iters, --repetitions and --quiet-attempts must be >= 1, "
                             "--min-time-s, --warmup, --warmup-s and --quiet-tolerance >= 0")
        quiet = {k: v for k, v in (("quiet_attempts", quiet_attempts), ("quiet_tolerance", quiet_tolerance)) if v is not None}
        budget = Budget(warmup_iters=warmup, warmup_s=warmup_s, min_iters=min_iters, min_time_s=min_time_s,
                        repetitions=repetitions, **quiet)
        for spec in specs:
            divisor = 4 * 2**spec.architecture.depth  # StackedHourglass.input_divisor
            fixed = spec.architecture.input_size
            if input_size % divisor or (fixed is not None and fixed != input_size):
                raise ValueError(f"--input-size {input_size}: {spec.name} needs a multiple of {divisor}"
                                 + (f" (and is fixed to {fixed})" if fixed is not None else ""))

    torch.set_num_threads(threads)
    trained_joints: dict[str, set[int]] = {}
    if num_joints is None and results.is_dir():
        for _, rec in iter_records(results, kind="train"):
            if isinstance(rec, dict) and rec.get("complete"):
                trained_joints.setdefault(rec["variant"], set()).add(rec["num_joints"])
    provenance = collect_provenance(threads=threads)
    jobs = [(s, j) for s in specs for j in sorted(trained_joints.get(s.name) or {num_joints or 16})]
    with _progress() as progress:
        task = progress.add_task("profile", total=len(jobs) * len(backends) * len(settings_list) * len(sizes) * repetitions,
                                 status=f"{device} ceilings")
        ceilings = {}
        for s in settings_list:
            try:
                ceilings[s.precision] = get_ceilings(dev, s.precision, threads=threads, cache_dir=cache, refresh=refresh_ceilings)
            except Exception as e:  # noqa: BLE001 - recorded per setting by profile_model's roofline stage
                err_console.print(f"[yellow]warning:[/] {device} ceilings at {s.precision} not measured: {e}")

        def on_step(label: str, advance: bool) -> None:
            if advance:
                progress.update(task, advance=1)
            else:
                progress.update(task, status=label)

        rows = run_sweep(jobs, backends=backends, settings_list=settings_list, batch_sizes=sizes, input_size=input_size,
                         device=dev, threads=threads, budget=budget, results_dir=results, provenance=provenance,
                         ceilings=ceilings, cache_dir=cache, on_step=on_step)
    _print_profile_table(rows, provenance, input_size, device, threads)
    console.print(f"records: {results / 'profile' / provenance['hostname']}")
    windows = window_summary(body["latency_ms"] for body, _ in rows)
    if windows["repetitions"]:
        (console if windows["quiet"] == windows["repetitions"] else err_console).print(
            f"timing windows: {windows['quiet']} of {windows['repetitions']} repetitions timed while the calibration probes "
            f"said the machine was quiet ({windows['windows']} windows timed); the others kept their least disturbed window "
            "(latency_ms.windows)")
    above = sorted({b["precision"] for b, _ in rows if ((b["roofline"] or {}).get("efficiency") or 0) > 1})
    if above:
        err_console.print(f"[yellow]warning:[/] roofline efficiency above 100 % at {', '.join(above)}: the cached ceilings in "
                          f"{cache / 'ceilings.json'} are below what a backend reached (measured on a busy machine, or a "
                          "backend with faster kernels than torch's); --refresh-ceilings measures them again")
    failed = [body for body, _ in rows if body["status"] != "ok"]
    if failed:
        err_console.print(f"[bold red]{len(failed)} of {len(rows)} settings failed[/] (recorded with the reason):")
        for body in failed:
            err_console.print(f"  {_setting_label(body)}: {body['error']}")
        raise typer.Exit(1)


def _setting_label(body: dict) -> str:
    flags = ("+tf32" if body["tf32"] else "") + ("+cl" if body["channels_last"] else "")
    return f"{body['variant']} j{body['num_joints']} {body['backend']} {body['precision']}{flags} batch {body['batch_size']}"


def _print_profile_table(rows: list, provenance: dict, input_size: int, device: str, threads: int) -> None:
    from hgbench.records import repetition_range_pct

    where = provenance["gpu_name"] if device == "cuda" else provenance["cpu_model"]
    table = Table(title=f"profile on {provenance['hostname']}: {device} ({where}), {threads} thread{'' if threads == 1 else 's'}, input {input_size}x{input_size}; "
                        "p50/p90/p99 per batch, GMACs per sample, efficiency = roofline floor / p50")
    for col in ("variant", "joints", "backend", "precision", "batch", "parameters", "GMACs fvcore", "p50 (ms)", "p90 (ms)",
                "p99 (ms)", "p50 range over repetitions (%)", "throughput (samples/s)", "efficiency (%)", "numerics ok", "status"):
        table.add_column(col, justify="left" if col in ("variant", "backend", "precision", "status") else "right")
    fmt = lambda v, spec=".2f": "—" if v is None else format(v, spec)  # noqa: E731
    for body, _ in rows:
        lat = body["latency_ms"] or {}
        eff = (body["roofline"] or {}).get("efficiency")
        num = body["numerics"]
        ok = "ref" if num is None and body["status"] == "ok" and body["backend"] == "eager" else ("—" if num is None else ("yes" if num.get("ok") else "NO"))
        flags = ("+tf32" if body["tf32"] else "") + ("+cl" if body["channels_last"] else "")
        table.add_row(body["variant"], str(body["num_joints"]), body["backend"], body["precision"] + flags, str(body["batch_size"]),
                      fmt(body["parameters"], ","), fmt(body["gmacs_fvcore"]), fmt(lat.get("p50_ms")), fmt(lat.get("p90_ms")),
                      fmt(lat.get("p99_ms")), fmt(repetition_range_pct(lat), ".1f"), fmt(body["throughput_samples_per_s"], ".1f"), fmt(None if eff is None else 100 * eff, ".1f"),
                      ok, body["status"])
    console.print(table)


@app.command()
def report(
    results: list[Path] = typer.Option([DEFAULT_RESULTS_DIR], "--results",
                                       help="Results folder; repeat it to report several machines' folders together."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: <first --results>/report)."),
    formats: str = typer.Option("md,csv,png", "--format", help="Comma-separated: md, csv, html, png."),
    backend: Optional[list[str]] = typer.Option(None, "--backend", help="Only these backends (repeatable or comma-separated)."),
    device: Optional[list[str]] = typer.Option(None, "--device", help="Only these machines: cpu, cuda, a host name, or part of a device name (H100)."),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="Only accuracy on these datasets."),
    precision: Optional[list[str]] = typer.Option(None, "--precision", help="Only these precisions: fp32, fp16, bf16."),
    batch_size: Optional[list[str]] = typer.Option(None, "--batch-size", help="Only these batch sizes."),
    input_size: Optional[list[str]] = typer.Option(None, "--input-size", help="Only these input sizes (px)."),
    pareto_on: str = typer.Option("latency", "--pareto-on", help="Cost of the Pareto front: latency (p50), gmacs or parameters."),
) -> None:
    """Accuracy-vs-cost and per-joint tables (Markdown, CSV, HTML) and plots (PNG) from results folders."""
    from hgbench.analysis.report import ACC, P50, PARETO, Filters, build_report, parse_formats, skipped_by_reason, write_report

    def many(values: Optional[list[str]], option: str, cast=str) -> tuple:
        items = [x for v in values or [] for x in _split(v)]
        try:
            return tuple(cast(x) for x in items)
        except ValueError:
            raise ValueError(f"{option}: expected integers, got {', '.join(items)}") from None

    with _user_errors():
        fmts = parse_formats(formats)
        filters = Filters(backend=many(backend, "--backend"), device=many(device, "--device"), dataset=many(dataset, "--dataset"),
                          precision=many(precision, "--precision"), batch_size=many(batch_size, "--batch-size", int),
                          input_size=many(input_size, "--input-size", int))
        rep = build_report(results, filters, pareto_on)
        written = write_report(rep, out or results[0] / "report", fmts)

    front = rep.cost[rep.cost[PARETO]]
    table = Table(title=f"Pareto-optimal rows (accuracy vs {rep.pareto_cost}, per machine, dataset, batch size, input size)")
    for col in ("host", "device", "dataset/split", "metric", "batch", "input (px)", "variant", "backend", "precision", ACC, P50):
        table.add_column(col)
    fmt = lambda v: "—" if v is None or v != v else f"{v:.2f}"  # noqa: E731
    for _, r in front.iterrows():
        table.add_row(str(r["host"]), f"{r['device']} {r['device name'] or ''}", f"{r['dataset']}/{r['split']}", str(r["metric"]),
                      str(r["batch size"]), str(r["input size (px)"]), r["variant"], r["backend"], r["precision"], fmt(r[ACC]), fmt(r[P50]))
    console.print(table if len(front) else "No Pareto-optimal row (no profiled variant has an accuracy record).")
    console.print(f"{rep.files} record files read from {', '.join(map(str, results))}: {len(rep.cost)} accuracy-vs-cost rows, "
                  f"{len(rep.per_joint)} per-joint rows, {len(rep.failed)} failed measurements, {len(rep.skipped)} records skipped.")
    for _, r in rep.failed.iterrows():
        console.print(f"[yellow]failed measurement:[/] {r['variant']} {r['backend']} {r['precision']} batch {r['batch size']} on "
                      f"{r['host']}: {r['error']}")
    for reason, paths in skipped_by_reason(rep.skipped):
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        console.print(f"skipped {len(paths)} x {reason}: {', '.join(paths[:3])}{more}")
    for note in rep.notes:
        console.print(f"[yellow]note:[/] {note}")
    pngs = [p for p in written if p.suffix == ".png"]
    console.print("written: " + ", ".join(str(p) for p in written if p.suffix != ".png")
                  + (f" and {len(pngs)} plots in {pngs[0].parent}" if pngs else ""))


data_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Fetch the official datasets (MPII, LSP, LSPET, COCO) and check a data folder.")
app.add_typer(data_app, name="data")
_CHECK_STYLE = {"ok": "green", "missing": "red", "incomplete": "yellow", "optional": "dim"}


def _print_data_check(reports) -> None:
    table = Table(title="data check")
    for col in ("dataset", "folder", "item", "status", "detail"):
        table.add_column(col)
    for rep in reports:
        for i, row in enumerate(rep.rows):
            table.add_row(rep.dataset if i == 0 else "", str(rep.root) if i == 0 else "", row.item,
                          f"[{_CHECK_STYLE[row.status]}]{row.status}[/]", row.detail)
    console.print(table)


@data_app.command("download")
def data_download(
    datasets: list[str] = typer.Argument(..., help="mpii, lsp, lspet or coco (several allowed)."),
    to: Path = typer.Option(..., "--to", help="Data folder; each dataset goes to <to>/<name>/ (the loaders' --data-root)."),
    all_: bool = typer.Option(False, "--all", help="Also the optional archives (COCO train2017, 19 GB; MPII JSON annotations)."),
    keep_archives: bool = typer.Option(False, help="Keep the verified archives in <to>/.downloads after extraction."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="A mirror holding the same file names; replaces the official URLs."),
    timeout: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", help="Seconds one network read may wait (connecting, the "
                                  "server's answer, each read) before the attempt counts as failed."),
    retries: int = typer.Option(DEFAULT_RETRIES, "--retries", help="Attempts per URL after a failed one (refused, dropped or "
                                "stalled); an attempt that made progress does not count."),
) -> None:
    """Download, verify and safely extract the official archives; an interrupted download resumes."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    from hgbench.data.download import CATALOGUE, check, check_network_options, download

    with _user_errors():
        check_network_options(timeout, retries, prefix="--")
        for name in datasets:
            if name not in CATALOGUE:
                raise ValueError(f"unknown dataset {name!r}; known: {', '.join(CATALOGUE)}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[status]}"), console=console)
    tasks: dict[str, int] = {}
    totals: dict[str, Optional[int]] = {}

    def on_event(event: str, info: dict) -> None:
        name = info["archive"].name
        if event in ("skip", "restart", "retry"):
            progress.console.print(f"{name}: {info['reason']}")
            return
        if name not in tasks:
            if event == "done":  # skipped: nothing was fetched, the line above said why
                return
            tasks[name] = progress.add_task(name, total=None, status="")
        task = tasks[name]
        if event == "start":
            totals[name] = info["total"]
            progress.update(task, total=info["total"], completed=info["resumed_from"],
                            status=f"resumed at {info['resumed_from']:,} bytes" if info["resumed_from"] else "")
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

    results = []
    with _user_errors(), progress:
        for name in datasets:
            results += download(name, to, base_url=base_url, include_optional=all_, keep_archives=keep_archives,
                                retries=retries, timeout=timeout, on_event=on_event)
    table = Table(title=f"downloads under {to}")
    for col in ("archive", "status", "verification", "location", "source of size/checksum"):
        table.add_column(col)
    for r in results:
        table.add_row(r.archive.name, r.status, r.verified, str(r.location), r.archive.checksum_source)
    console.print(table)
    for r in results:
        for w in r.warnings:
            err_console.print(f"[yellow]warning:[/] {w}")
    _print_data_check(check(to, list(dict.fromkeys(datasets))))


@data_app.command("check")
def data_check(
    data_dir: Path = typer.Argument(..., help="The folder given to `hgbench data download --to`."),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="Check only this dataset (repeatable)."),
) -> None:
    """Report per dataset what the loaders need and what is missing.

    Exit status 1 when a requested dataset (--dataset), or without --dataset any dataset that
    is partly present, is incomplete, or when no dataset is found at all.
    """
    from hgbench.data.download import check

    with _user_errors():
        reports = check(data_dir, dataset or None)
    _print_data_check(reports)
    requested = reports if dataset else [r for r in reports if r.present]
    if not requested:
        err_console.print(f"no dataset found under {data_dir}; fetch one with `hgbench data download NAME --to {data_dir}`")
        raise typer.Exit(1)
    incomplete = [r.dataset for r in requested if not r.complete]
    if incomplete:
        err_console.print(f"incomplete: {', '.join(incomplete)}")
        raise typer.Exit(1)
    console.print(f"complete: {', '.join(r.dataset for r in requested)}")


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="Results folder (or one record file) of the baseline profile run."),
    current: Path = typer.Argument(..., help="Results folder (or one record file) of the run to check."),
    threshold: Optional[list[str]] = typer.Option(
        None, "--threshold", help="METRIC=PERCENT (or METRIC=off), repeatable; metrics: p50 (default 10), p90 (20), "
        "throughput (10), peak_memory (20), parameters (0), gmacs (0)."),
    alpha: float = typer.Option(0.01, help="Significance level of the one-sided Mann-Whitney test on the raw samples."),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="Do not divide timings by each run's calibration workload."),
    show_all: bool = typer.Option(False, "--all", help="Show unchanged rows too."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the comparison as JSON here."),
) -> None:
    """Compare two profile runs record by record; exit 1 on a latency (or memory) regression, 2 on bad input."""
    import json

    from hgbench.analysis.compare import comparison_table, compare_results, parse_thresholds, summary_line
    from hgbench.records import atomic_write_bytes

    with _user_errors():
        comp = compare_results(baseline, current, parse_thresholds(threshold), alpha, normalize=not no_normalize)
    for side, text in comp.sides.items():
        console.print(f"{side}: {text}")
    console.print(comparison_table(comp, show_all=show_all))
    for path, why in comp.skipped:
        console.print(f"skipped {path}: {why}")
    for warning in comp.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(summary_line(comp))
    if json_out is not None:
        atomic_write_bytes(json_out, (json.dumps(comp.to_dict(), indent=1) + "\n").encode())
    if comp.failed:
        console.print(f"[bold red]regression:[/] {', '.join(comp.regressed_variants())}")
        raise typer.Exit(1)


@app.command("latency-check")
def latency_check(
    reference: Path = typer.Option(Path("benchmarks/reference/latency-gate"), help="Committed reference records."),
    variants_: Optional[str] = typer.Option(None, "--variants", help="Comma-separated variant names (default: all)."),
    out: Optional[Path] = typer.Option(None, help="Where to write this run's records (default: a new temporary folder)."),
    retries: int = typer.Option(1, help="Re-measure a flagged variant this many times before failing."),
    threshold: Optional[list[str]] = typer.Option(None, "--threshold", help="As hgbench compare (default: p50=50, others off)."),
    update: bool = typer.Option(False, "--update", help="(Re)write the reference records instead of checking (quiet machine!)."),
) -> None:
    """CI latency regression gate: every variant's CPU forward pass (batch 1, 64 px, 1 thread) timed
    interleaved with a frozen reference network, compared with the committed reference; exit 1 on a
    regression confirmed by a re-measurement, 2 on bad input."""
    from hgbench.analysis.compare import comparison_table, summary_line
    from hgbench.analysis.gate import GATE_THRESHOLDS, run_gate, update_reference

    names = _split(variants_) if variants_ else None
    with console.status("measuring") as status, _user_errors():
        if update:
            paths = update_reference(reference, names, progress=lambda n: status.update(f"measuring {n} (reference)"))
        else:
            final, attempts, folder = run_gate(reference, names, out, thresholds=threshold or GATE_THRESHOLDS,
                                               retries=retries, progress=lambda n: status.update(f"measuring {n}"))
    if update:
        console.print(f"{len(paths)} reference records written to {reference}; commit them")
        return
    for i, comp in enumerate(attempts):
        if i:
            console.print(f"re-measured: {', '.join(sorted({r.key.variant for r in comp.rows if r.current is not None}))}")
        console.print(comparison_table(comp, show_all=True, metrics=("p50", "parameters")))
    for warning in final.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"records: {folder}; {summary_line(final)}")
    if final.failed:
        console.print(f"[bold red]latency regression (every attempt):[/] {', '.join(final.regressed_variants())}")
        raise typer.Exit(1)


@app.command()
def score(
    predictions: Path = typer.Argument(..., help="Prediction file: .mat or .h5 with (N, 16, 2) or (16, 2, N) pixel coordinates "
                                                  "in the validation split's order (variables preds, pos_pred_src, ...)."),
    gt: Path = typer.Option(..., "--gt", help="Ground truth: gt_valid_detections_our_format.mat (or gt_valid.mat) or valid.h5 with normalize."),
    convention: str = typer.Option("official", help="official (MPII toolkit: Head = neck and head top, Mean pooled) or "
                                                    "bearpaw (eval_PCKh.py: Head = head top, Mean over the 14 joints)."),
    fmt: str = typer.Option("md", "--format", help="md (table and the curve every 0.1) or csv (the full curve, every 0.01)."),
    threshold: float = typer.Option(0.5, help="Table threshold as a fraction of the head size (PCKh@0.5)."),
    key: Optional[str] = typer.Option(None, help="Variable holding the predictions (default: preds, pred, predictions, pos_pred_src, ...)."),
    zero_based: bool = typer.Option(False, "--zero-based", help="Predictions use 0-based pixels (OpenCV, hgbench): add 1 to match the 1-based MPII files."),
    out: Optional[Path] = typer.Option(None, help="Also write the output to this file."),
) -> None:
    """Score an MPII prediction file: per-joint PCKh, Mean@0.1 and the PCKh curve over thresholds 0 to 0.5."""
    from hgbench.accuracy.pckh import score_files
    from hgbench.records import atomic_write_bytes

    with _user_errors():
        if fmt not in ("md", "csv"):
            raise ValueError(f"--format must be md or csv, got {fmt!r}")
        result = score_files(predictions, gt, convention=convention, threshold=threshold, key=key, zero_based=zero_based)
    text = result.to_csv() if fmt == "csv" else result.to_markdown(f"{predictions.name}: PCKh@{threshold:g} ({convention}) against {gt.name}")
    typer.echo(text, nl=False)
    if out is not None:
        atomic_write_bytes(out, text.encode())


@app.command()
def schema(kind: str = typer.Argument(..., help="variant or protocol")) -> None:
    """Print the JSON Schema of a variant or protocol YAML file (for editors and CI checks)."""
    import json

    from hgbench.config import SCHEMA_KINDS, json_schema

    if kind not in SCHEMA_KINDS:
        _fail(f"schema KIND: {kind!r} is not one of {', '.join(SCHEMA_KINDS)}; run e.g. hgbench schema variant")
    typer.echo(json.dumps(json_schema(kind), indent=2))


if __name__ == "__main__":  # pragma: no cover
    app()
