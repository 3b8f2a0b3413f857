"""The ``hgbench`` command line: a thin typer layer over the library.

Every command parses its options, calls one library function and prints; errors in the
user's input (unknown variant, unreadable dataset, malformed YAML) exit with status 2 and a
message that names the file or option and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from hgbench.console import (
    DEBUG,
    console,
    download_display,
    fail,
    print_comparison,
    print_data_check,
    print_downloads,
    print_evaluation,
    print_profile,
    print_report,
    print_run_statuses,
    print_train_records,
    print_variants,
    progress_bar,
    say,
    user_errors,
)
from hgbench.data import DEFAULT_DATASET
from hgbench.data.download import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
from hgbench.paths import DEFAULT_RESULTS_DIR

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, profile and compare stacked-hourglass pose networks.")
ResultsOpt = typer.Option(DEFAULT_RESULTS_DIR, "--results", help="Results folder (records, checkpoints).")
DatasetOpt = typer.Option(DEFAULT_DATASET, "--dataset", help="Dataset: synthetic (embedded, no download), lspet or lsp.")
DataRootOpt = typer.Option(None, "--data-root", help="Dataset folder (lspet/lsp: joints.mat and images/).")
DeviceOpt = typer.Option(None, "--device", help="cpu, cuda or cuda:N (default: cuda when available).")


@app.callback()
def main(debug: bool = typer.Option(False, "--debug", help="On an error, show the Python traceback instead of one line.")) -> None:
    """Train, profile and compare stacked-hourglass pose networks."""
    DEBUG["on"] = debug


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@app.command()
def variants(
    num_joints: int = typer.Option(16, help="Heatmaps per network for the parameter count (16: MPII, as the papers)."),
    input_size: int = typer.Option(256, help="Input side in pixels for the GMACs."),
) -> None:
    """List the registered variants: stacks, block, source paper, parameters and GMACs."""
    from hgbench.profile.plan import variant_summaries

    with user_errors():
        rows = variant_summaries(num_joints, input_size)
    print_variants(rows, num_joints, input_size)


def _train(plan, launcher: str = "local", gpus: Optional[str] = None, opts=None, wait: bool = False) -> None:
    from hgbench.train import TrainingInterrupted
    from hgbench.train.launch import run_local_gpus, run_slurm, train_local
    from hgbench.train.progress import TrainDisplay

    if launcher == "slurm" or gpus is not None:
        with user_errors():
            statuses, ok = run_slurm(plan, opts, wait, say) if launcher == "slurm" else run_local_gpus(plan, gpus, say)
        if statuses:
            print_run_statuses(statuses)
        if not ok:
            raise typer.Exit(1)
        return
    try:
        with TrainDisplay(console) as display, user_errors():
            runs = train_local(plan, display)
    except TrainingInterrupted as e:
        fail(str(e), code=e.exit_code)
    print_train_records(runs.records)
    if runs.failed:
        fail("; ".join(f"{variant}: {why}" for variant, why in runs.failed), code=1)


@app.command("train-all")
def train_all(
    protocol: str = typer.Option(..., "--protocol", help="Protocol name (variants/protocols/*.yaml) or a YAML path."),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    variants_: Optional[str] = typer.Option(None, "--variants", help="Comma-separated variant names (default: all)."),
    results: Path = ResultsOpt,
    force: bool = typer.Option(False, help="Retrain variants whose run is already complete."),
    device: Optional[str] = DeviceOpt,
    launcher: str = typer.Option("local", "--launcher", help="local: on this machine (one variant after another, or one per GPU "
                                 "with --gpus); slurm: one Slurm job per variant, submitted as one job array."),
    gpus: Optional[str] = typer.Option(None, "--gpus", help="Local: comma-separated GPUs, one variant on each at once, e.g. 0,1,2,3."),
    slurm_partition: Optional[str] = typer.Option(None, "--slurm-partition", help="Slurm partition (default: the cluster's)."),
    slurm_gpus_per_job: Optional[int] = typer.Option(None, "--slurm-gpus-per-job", help="GPUs per job (default 1; 0 with --device cpu)."),
    slurm_cpus_per_task: Optional[int] = typer.Option(None, "--slurm-cpus-per-task",
                                                      help="CPUs per job (default: the cluster's; give the protocol's num_workers + 1)."),
    slurm_time: Optional[int] = typer.Option(None, "--slurm-time", help="Time limit per job in minutes (default 240); a job that "
                                             "reaches it is requeued and resumes from its checkpoint."),
    slurm_array_parallelism: Optional[int] = typer.Option(None, "--slurm-array-parallelism", help="At most this many jobs at once."),
    slurm_account: Optional[str] = typer.Option(None, "--slurm-account", help="Slurm account to charge."),
    slurm_qos: Optional[str] = typer.Option(None, "--slurm-qos", help="Slurm quality of service."),
    wait: bool = typer.Option(False, "--wait", help="Slurm: block until every job ends; exit 1 unless every run is complete."),
) -> None:
    """Train every registered variant (or a selection) under one protocol: here, one per GPU, or on a Slurm cluster."""
    from hgbench.train.launch import check_launcher, plan_training, slurm_options

    slurm = {"partition": slurm_partition, "gpus_per_job": slurm_gpus_per_job, "cpus_per_task": slurm_cpus_per_task,
             "time_min": slurm_time, "array_parallelism": slurm_array_parallelism, "account": slurm_account, "qos": slurm_qos}
    with user_errors():
        check_launcher(launcher, gpus, {"--slurm-" + k.replace("_", "-"): v for k, v in slurm.items()} | {"--wait": wait or None})
        plan = plan_training(variants_, protocol, dataset, data_root, results, device, force, here=launcher == "local")
        opts = slurm_options(device, **slurm) if launcher == "slurm" else None
    _train(plan, launcher, gpus, opts, wait)


@app.command()
def runs(results: Path = ResultsOpt) -> None:
    """Where every training run of a results folder stands: queued, running, interrupted, complete or failed,
    with its Slurm job, log, last step and checkpoint time, and for a failure the last lines of its error log."""
    from hgbench.train.status import run_statuses

    statuses = run_statuses(results)
    print_run_statuses(statuses) if statuses else say(f"no training run under {results}/runs")


@app.command()
def train(
    variant: str = typer.Argument(..., help="Registered variant name."),
    protocol: str = typer.Option(..., "--protocol", help="Protocol name or YAML path."),
    dataset: str = DatasetOpt,
    data_root: Optional[Path] = DataRootOpt,
    results: Path = ResultsOpt,
    force: bool = typer.Option(False, help="Retrain even if the run is complete."),
    device: Optional[str] = DeviceOpt,
) -> None:
    """Train one variant under a protocol (under torchrun or srun: data parallel over the processes)."""
    from hgbench.train.launch import plan_training

    with user_errors():
        plan = plan_training(variant, protocol, dataset, data_root, results, device, force)
    _train(plan)


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
    device: Optional[str] = DeviceOpt,
) -> None:
    """Evaluate a checkpoint on a split: per-joint accuracy with 95 % intervals (the dataset's metric; visible vs
    occluded joints where it has a visibility flag), written as an eval record beside it."""
    from hgbench.train.evaluation import evaluate_checkpoint

    with progress_bar() as progress, user_errors():
        task = progress.add_task(f"evaluate {checkpoint}", total=None, status="")
        ev = evaluate_checkpoint(checkpoint, dataset, data_root, split, threshold, flip, skip_bad_samples, device,
                                 progress=lambda done, total: progress.update(task, completed=done, total=total))
    print_evaluation(ev)


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
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Input side in pixels (default: the training "
                                             "protocol's where --results holds training runs of one input size, else 256)."),
    num_joints: Optional[int] = typer.Option(None, help="Heatmaps per network (default: as trained in --results, else 16)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: the physical cores this process may "
                                          "use less one, at least 1; recorded)."),
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
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Device ceilings and backend artefacts "
                                             "(default: $HGBENCH_CACHE_DIR or ~/.cache/hgbench)."),
    refresh_ceilings: bool = typer.Option(False, "--refresh-ceilings", help="Measure the device's roofline ceilings again."),
    results: Path = ResultsOpt,
) -> None:
    """Measure size, MACs/FLOPs, latency (p50/p90/p99), memory, numerics and roofline efficiency on this machine.

    One record per variant, backend, precision and batch size; a failing setting is recorded with its reason and
    the sweep goes on (exit 1 at the end); an unavailable backend or bad option stops before anything runs (exit 2).
    """
    options = dict(locals())  # every option, as the library names them
    from hgbench.profile.plan import plan_profile, run_profile

    with user_errors():
        plan = plan_profile(options.pop("variants_"), **options)
    with progress_bar() as progress, user_errors():
        task = progress.add_task("profile", total=plan.total_steps, status=f"{plan.device.type} ceilings")
        run = run_profile(plan, lambda label, advance: progress.update(task, advance=1) if advance else progress.update(task, status=label))
    print_profile(run, plan)
    if run.failed:
        raise typer.Exit(1)


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
    from hgbench.analysis.report import Filters, report_from_options

    with user_errors():
        filters = Filters.from_options(backend=backend, device=device, dataset=dataset, precision=precision,
                                       batch_size=batch_size, input_size=input_size)
        rep, written = report_from_options(results, out, formats, filters, pareto_on)
    print_report(rep, written, results)


data_app = typer.Typer(add_completion=False, no_args_is_help=True,
                       help="Fetch the official datasets (MPII, LSP, LSPET, COCO) and check a data folder.")
app.add_typer(data_app, name="data")


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
    from hgbench.data.download import check, check_download_request, download

    with user_errors():
        check_download_request(datasets, timeout, retries)
    progress, on_event = download_display()
    results = []
    with user_errors(), progress:
        for name in datasets:
            results += download(name, to, base_url=base_url, include_optional=all_, keep_archives=keep_archives,
                                retries=retries, timeout=timeout, on_event=on_event)
    print_downloads(results, to)
    print_data_check(check(to, list(dict.fromkeys(datasets))))


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

    with user_errors():
        reports = check(data_dir, dataset or None)
    print_data_check(reports)
    requested = reports if dataset else [r for r in reports if r.present]
    if not requested:
        fail(f"no dataset found under {data_dir}; fetch one with `hgbench data download NAME --to {data_dir}`", code=1)
    incomplete = [r.dataset for r in requested if not r.complete]
    if incomplete:
        fail(f"incomplete: {', '.join(incomplete)}", code=1)
    say(f"complete: {', '.join(r.dataset for r in requested)}")


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
    from hgbench.analysis.compare import compare_results, parse_thresholds, summary_line, write_comparison

    with user_errors():
        comp = compare_results(baseline, current, parse_thresholds(threshold), alpha, normalize=not no_normalize)
    print_comparison(comp, show_all=show_all)
    say(summary_line(comp))
    if json_out is not None:
        with user_errors():
            write_comparison(comp, json_out)
    if comp.failed:
        fail(f"regression: {', '.join(comp.regressed_variants())}", code=1)


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
    from hgbench.analysis.compare import summary_line
    from hgbench.analysis.gate import GATE_THRESHOLDS, run_gate, update_reference

    names = _split(variants_) if variants_ else None
    with console.status("measuring") as status, user_errors():
        if update:
            paths = update_reference(reference, names, progress=lambda n: status.update(f"measuring {n} (reference)"))
            say(f"{len(paths)} reference records written to {reference}; commit them")
            return
        final, attempts, folder = run_gate(reference, names, out, thresholds=threshold or GATE_THRESHOLDS,
                                           retries=retries, progress=lambda n: status.update(f"measuring {n}"))
    for i, comp in enumerate(attempts):
        if i:
            say(f"re-measured: {', '.join(sorted({r.key.variant for r in comp.rows if r.current is not None}))}")
        print_comparison(comp, show_all=True, metrics=("p50", "parameters"), sides=False)
    say(f"records: {folder}; {summary_line(final)}")
    if final.failed:
        fail(f"latency regression (every attempt): {', '.join(final.regressed_variants())}", code=1)


@app.command()
def score(
    predictions: Path = typer.Argument(..., help="Prediction file: .mat or .h5 with (N, 16, 2) or (16, 2, N) pixel coordinates "
                                                  "in the validation split's order (variables preds, pos_pred_src, ...)."),
    gt: Path = typer.Option(..., "--gt", help="Ground truth: gt_valid_detections_our_format.mat (or gt_valid.mat) or valid.h5 with normalize."),
    convention: str = typer.Option("official", help="official (MPII toolkit: Head = neck and head top, Mean pooled) or "
                                                    "bearpaw (eval_PCKh.py: Head = head top, Mean over the 14 joints)."),
    fmt: str = typer.Option("md", "--format", help="md (table and the curve every 0.1) or csv (the full curve, every 0.01)."),
    threshold: float = typer.Option(0.5, help="Table threshold as a fraction of the head size (PCKh@0.5)."),
    key: Optional[str] = typer.Option(None, help="Variable holding the predictions (default: preds, pred, predictions, "
                                      "pos_pred_src, ...; needed to score a ground-truth file's variable)."),
    zero_based: bool = typer.Option(False, "--zero-based", help="Predictions use 0-based pixels (OpenCV, hgbench): add 1 to match the 1-based MPII files."),
    out: Optional[Path] = typer.Option(None, help="Also write the output to this file."),
) -> None:
    """Score an MPII prediction file: per-joint PCKh, Mean@0.1 and the PCKh curve over thresholds 0 to 0.5."""
    from hgbench.accuracy.mpii_files import score_report

    with user_errors():
        text, notes = score_report(predictions, gt, convention=convention, fmt=fmt, threshold=threshold, key=key,
                                   zero_based=zero_based, out=out)
    typer.echo(text, nl=False)
    for note in notes:
        say(note, err=True)


@app.command()
def schema(kind: str = typer.Argument(..., help="variant or protocol")) -> None:
    """Print the JSON Schema of a variant or protocol YAML file (for editors and CI checks)."""
    import json

    from hgbench.config import SCHEMA_KINDS, json_schema

    if kind not in SCHEMA_KINDS:
        fail(f"schema KIND: {kind!r} is not one of {', '.join(SCHEMA_KINDS)}; run e.g. hgbench schema variant")
    typer.echo(json.dumps(json_schema(kind), indent=2))


if __name__ == "__main__":  # pragma: no cover
    app()
