"""The ``hgbench`` command line, typer only: each command parses its options (one per line, a table the formatter
leaves alone), makes one library call and prints (:mod:`hgbench.console`); the library checks every option before
any work. Exit statuses: 0 done, 1 a failed measurement or job or a machine fault, 2 bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hgbench import console as ui
from hgbench.config.axes import BACKENDS, COMPILE_MODES, DATASETS, DEFAULT_DATASET, INFERENCE_PRECISIONS, spoken
from hgbench.data.download import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S, DOWNLOADABLE
from hgbench.paths import DEFAULT_RESULTS_DIR, LATENCY_GATE_DIR

# fmt: off

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train, profile and compare stacked-hourglass pose networks.")
data_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Fetch the official datasets and check a data folder.")
app.add_typer(data_app, name="data")


def _path(option: str) -> dict:
    """A path option's parser: ``""`` would otherwise be ``Path(".")``, the current folder, silently."""

    def parse(value: str) -> Path:
        if not str(value).strip():
            ui.fail(f"{option}: empty path; pass a file or folder name")
        return Path(value)

    return {"parser": parse, "metavar": "<path>"}


Results = Annotated[Path, typer.Option("--results", **_path("--results"), help="Results folder (records, checkpoints).")]
_READ_DATASETS = spoken([d for d in DATASETS if d != DEFAULT_DATASET])  # read from a folder (--data-root)
Dataset = Annotated[str, typer.Option("--dataset", help=f"{DEFAULT_DATASET} (embedded, no download), {_READ_DATASETS}.")]
DataRoot = Annotated[Path | None, typer.Option("--data-root", **_path("--data-root"),
                                                help="Dataset folder (lspet/lsp: joints.mat, images/).")]
Device = Annotated[str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda when available).")]
Variants = Annotated[str | None, typer.Option("--variants", help="Comma-separated variant names (default: all).")]
Protocol = Annotated[str, typer.Option("--protocol", help="Protocol name (variants/protocols/*.yaml) or a YAML path.")]
Force = Annotated[bool, typer.Option("--force", help="Retrain a complete run, or start over from an unreadable checkpoint.")]
SkipBad = Annotated[bool, typer.Option("--skip-bad-samples", help="Leave out unreadable images (counted, reported).")]
Tracker = Annotated[str | None, typer.Option(help="Log curves to tensorboard or mlflow, or none (default: $HGBENCH_TRACKER).")]
# the Slurm resources train-all and profile --launcher slurm both take
SlurmGpus = Annotated[int | None, typer.Option("--slurm-gpus-per-job", help="GPUs per job (default 1; 0 with --device cpu).")]
SlurmAccount = Annotated[str | None, typer.Option("--slurm-account", help="Slurm account to charge.")]
SlurmQos = Annotated[str | None, typer.Option("--slurm-qos", help="Slurm quality of service.")]


def _many(help_text: str):  # a repeatable filter option of `report`
    return Annotated[list[str] | None, typer.Option(help=help_text)]


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="On an error, show the traceback instead of one line.")] = False):
    """Train, profile and compare stacked-hourglass pose networks."""
    ui.DEBUG["on"] = debug


@app.command()
def variants(
    num_joints: Annotated[int, typer.Option(help="Heatmaps per network for the parameter count (16: MPII).")] = 16,
    input_size: Annotated[int, typer.Option(help="Input side in pixels for the GMACs.")] = 256,
) -> None:
    """List the registered variants: stacks, block, source paper, parameters and GMACs."""
    from hgbench.profile.plan import variant_summaries
    with ui.user_errors():
        rows = variant_summaries(num_joints, input_size)
    ui.print_variants(rows, num_joints, input_size)


@app.command("train-all")
def train_all(
    protocol: Protocol,
    dataset: Dataset = DEFAULT_DATASET, data_root: DataRoot = None,
    variants_: Variants = None,
    results: Results = DEFAULT_RESULTS_DIR,
    force: Force = False, skip_bad_samples: SkipBad = False,
    device: Device = None, tracker: Tracker = None,
    launcher: Annotated[str, typer.Option(help="local (this machine) or slurm (one job per variant, a job array).")] = "local",
    gpus: Annotated[str | None, typer.Option(help="Local: one variant per GPU at once, e.g. 0,1,2,3.")] = None,
    slurm_partition: Annotated[str | None, typer.Option(help="Slurm partition (default: the cluster's).")] = None,
    slurm_gpus_per_job: SlurmGpus = None,
    slurm_cpus_per_task: Annotated[int | None, typer.Option(help="CPUs per job (the protocol's num_workers + 1).")] = None,
    slurm_time: Annotated[int | None, typer.Option(help="Minutes per job (default 240); requeued at the limit.")] = None,
    slurm_array_parallelism: Annotated[int | None, typer.Option(help="At most this many jobs at once.")] = None,
    slurm_account: SlurmAccount = None,
    slurm_qos: SlurmQos = None,
    wait: Annotated[bool, typer.Option(help="Slurm: wait for every job; exit 1 unless every run completes.")] = False,
) -> None:
    """Train every registered variant (or a selection) under one protocol: here, one per GPU, or on a Slurm cluster."""
    slurm = {k.removeprefix("slurm_"): v for k, v in locals().items() if k.startswith("slurm_")}  # --slurm-NAME: NAME
    from hgbench.train.launch import launch_options, plan_training
    with ui.user_errors():
        opts = launch_options(launcher, gpus, device, wait, **slurm)
        plan = plan_training(variants_, protocol, dataset, data_root, results, device, force, launcher == "local", skip_bad_samples,
                             tracker)
    ui.run_training(plan, launcher, gpus, opts, wait)


@app.command()
def train(
    variant: Annotated[str, typer.Argument(help="Registered variant name.")],
    protocol: Protocol,
    dataset: Dataset = DEFAULT_DATASET, data_root: DataRoot = None,
    results: Results = DEFAULT_RESULTS_DIR,
    force: Force = False, skip_bad_samples: SkipBad = False,
    device: Device = None, tracker: Tracker = None,
    deterministic: Annotated[bool, typer.Option(help="Deterministic CUDA kernels, no cudnn.benchmark: "
                                                     "resume bit-identical on CUDA too (slower).")] = False,
) -> None:
    """Train one variant under a protocol (under torchrun or srun: data parallel over the processes)."""
    from hgbench.train.launch import plan_training
    if deterministic:  # before any CUDA work: cuBLAS reads its workspace setting when it starts
        from hgbench.train.device import request_deterministic
        request_deterministic()
    with ui.user_errors():
        plan = plan_training(variant, protocol, dataset, data_root, results, device, force, True, skip_bad_samples, tracker)
    ui.run_training(plan)


@app.command()
def runs(results: Results = DEFAULT_RESULTS_DIR) -> None:
    """Where every training run stands (queued, running, interrupted, complete, failed): job, log, last step;
    and every profile job (pending, running, complete, failed): partition, machine label, log."""
    from hgbench.profile.launch import profile_job_statuses
    from hgbench.train.status import run_statuses
    with ui.user_errors():
        statuses, jobs = run_statuses(results), profile_job_statuses(results)
    ui.print_run_statuses(statuses, empty=None if jobs else f"no training run under {results}/runs, no profile job in {results}/logs")
    ui.print_profile_jobs(jobs)


@app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="A checkpoint.pt written by train.")],
    dataset: Annotated[str | None, typer.Option(help="Dataset (default: the one it was trained on).")] = None,
    data_root: DataRoot = None,
    split: Annotated[str, typer.Option(help="Split: train, val or all.")] = "val",
    threshold: Annotated[float | None, typer.Option(help="Fraction of the normaliser (default: PCK 0.2, PCKh 0.5).")] = None,
    flip: Annotated[bool | None, typer.Option("--flip/--no-flip", help="Flip test (default: the protocol's).")] = None,
    skip_bad_samples: SkipBad = False,
    device: Device = None,
    backend: Annotated[str | None, typer.Option(help=f"Evaluate the deployed artifact of this backend ({spoken(BACKENDS)}).")] = None,
    precision: Annotated[str | None, typer.Option(help=f"The artifact's precision: {spoken(INFERENCE_PRECISIONS)} (default fp32; "
                                                       "int8/fp8 calibrated on 256 training-split crops).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Crops per call of the artifact (default 16).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(**_path("--cache-dir"), help="Built artefacts (~/.cache/hgbench).")] = None,
) -> None:
    """Per-joint accuracy of a checkpoint on a split, with 95 % intervals, written as an eval record beside it;
    with --backend/--precision, of the deployed artifact, with its difference to eager fp32 on the same persons."""
    from hgbench.profile.deployed import deployment_from_options
    from hgbench.train.evaluation import evaluate_checkpoint
    with ui.user_errors():
        deployment = deployment_from_options(backend, precision, batch_size, cache_dir)
    with ui.counting(f"evaluate {checkpoint}") as count, ui.user_errors():
        ev = evaluate_checkpoint(
            checkpoint, dataset, data_root, split, threshold, flip, skip_bad_samples, device, progress=count, deployment=deployment
        )  # fmt: skip
    ui.print_evaluation(ev)


@app.command()
def profile(
    variants_: Variants = None,
    backend: Annotated[str, typer.Option(help=", ".join(BACKENDS))] = "eager,torchscript",
    precision: Annotated[str, typer.Option(help=f"Comma-separated precisions: {', '.join(INFERENCE_PRECISIONS)} "
                                                "(int8/fp8: post-training quantization, on the backends that build it).")] = "fp32",
    tf32: Annotated[bool, typer.Option("--tf32/--no-tf32", help="Allow TF32 on CUDA (off: IEEE fp32).")] = False,
    channels_last: Annotated[bool, typer.Option(help="Model and input in channels_last (NHWC).")] = False,
    compile_mode: Annotated[str, typer.Option(help=f"torch.compile mode: {', '.join(COMPILE_MODES)}.")] = "default",
    batch_size: Annotated[str, typer.Option(help="Batch size(s), comma-separated, e.g. 1,8,32.")] = "1",
    input_size: Annotated[int | None, typer.Option(help="Input side, px (default: as trained, else 256).")] = None,
    num_joints: Annotated[int | None, typer.Option(help="Heatmaps (default: as trained in --results, else 16).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: physical cores less one).")] = None,
    min_time_s: Annotated[float, typer.Option(help="Time each setting for at least this many seconds...")] = 1.0,
    min_iters: Annotated[int, typer.Option(help="...and at least this many calls (all repetitions).")] = 10,
    repetitions: Annotated[int, typer.Option(help="Repetitions per setting, interleaved across the sweep.")] = 3,
    quiet_attempts: Annotated[int | None, typer.Option(help="Retime a disturbed window up to this often (10).")] = None,
    quiet_tolerance: Annotated[float | None, typer.Option(help="Quiet: probes within this fraction (0.15).")] = None,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up calls before each repetition...")] = 3,
    warmup_s: Annotated[float, typer.Option(help="...and warm-up seconds before each backend's first setting.")] = 0.5,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if available).")] = None,
    cache_dir: Annotated[Path | None, typer.Option(**_path("--cache-dir"), help="Ceilings and artefacts (~/.cache/hgbench).")] = None,
    refresh_ceilings: Annotated[bool, typer.Option(help="Measure the roofline ceilings again.")] = False,
    results: Results = DEFAULT_RESULTS_DIR,
    dataset: Annotated[str | None, typer.Option(help="int8/fp8 calibration data (default: the trained runs' dataset).")] = None,
    data_root: DataRoot = None,
    calibration_count: Annotated[int, typer.Option(help="int8/fp8: calibration crops of the training split.")] = 256,
    calibration_seed: Annotated[int, typer.Option(help="int8/fp8: seed of the calibration draw.")] = 0,
    calibration_method: Annotated[str, typer.Option(help="int8 on onnxruntime: minmax, entropy or percentile.")] = "minmax",
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Also measure each setting's accuracy through its artifact, "
                                           "for variants trained into --results (eval records beside the checkpoints).")] = False,
    machine_label: Annotated[str | None, typer.Option(help="Names the machine in the records and the report (default: the host "
                                                      "name; with --launcher slurm each job's partition, or one label per "
                                                      "partition, comma-separated, in the same order).")] = None,
    launcher: Annotated[str, typer.Option(help="local (this machine) or slurm (one job per --slurm-partition, each "
                                               "profiling the same sweep on its node).")] = "local",
    slurm_partition: Annotated[str | None, typer.Option(help="Slurm partitions = machine kinds, comma-separated: one job each.")] = None,
    slurm_gpus_per_job: SlurmGpus = None,
    slurm_cpus_per_task: Annotated[int | None, typer.Option(help="CPUs per job; --threads defaults to them.")] = None,
    slurm_time: Annotated[int | None, typer.Option(help="Minutes per job (default 60).")] = None,
    slurm_account: SlurmAccount = None,
    slurm_qos: SlurmQos = None,
    wait: Annotated[bool, typer.Option(help="Slurm: wait for every job; exit 1 naming each that failed.")] = False,
) -> None:
    """Size, MACs/FLOPs, latency (p50/p90/p99), memory, numerics and roofline efficiency on this machine:
    one record per setting; a failing setting is recorded and the sweep goes on (exit 1 at the end).
    With --launcher slurm, the same sweep on each partition's node (hgbench runs lists the jobs)."""
    options = dict(locals())  # every option, as the library names them
    from hgbench.profile.launch import pop_launch_options
    from hgbench.profile.plan import plan_profile, run_profile, save_sweep_record
    from hgbench.profile.timeline import Timeline, process_age_s
    timeline = Timeline(before_s=process_age_s() or 0.0)  # where the wall time goes, from the process's start
    options.pop("evaluate")
    with ui.user_errors():
        slurm = pop_launch_options(options, evaluate)  # --launcher, --slurm-*, --wait: None for local
    if slurm is not None:  # one job per partition, each this sweep (hgbench.profile.launch); exits
        ui.run_profile_jobs({"variants": options.pop("variants_"), **options}, slurm)
    with ui.user_errors(), timeline.phase("startup"):
        plan = plan_profile(options.pop("variants_"), **options)
    with ui.stepping("profile", plan.total_steps, f"{plan.device.type} ceilings") as step, ui.user_errors():
        run = run_profile(plan, step, timeline=timeline)
    deployed = None
    if evaluate:
        from hgbench.profile.deployed import deployment_for
        from hgbench.train.deployed import evaluate_profiled
        ui.print_profile(run, plan, summary=False)
        with ui.user_errors(), timeline.phase("evaluation"):
            deployed = evaluate_profiled([r for r, _ in run.rows], plan.results, lambda r: deployment_for(r, plan),
                                         data_root=data_root, device=plan.device.type)  # fmt: skip
        ui.print_deployed(deployed)
        save_sweep_record(run, plan)  # again, with the evaluation's time
        ui.print_sweep_time(run)
    else:
        ui.print_profile(run, plan)
    from hgbench.tracking import track_profile  # HGBENCH_TRACKER: the sweep as one TensorBoard/MLflow run
    measured = deployed and [(record, ev.result.mean) for record, ev in deployed.evaluations]
    track_profile(None, run.rows, plan.results, plan.device.type, measured)
    raise typer.Exit(1 if run.failed or (deployed is not None and deployed.failed) else 0)


@app.command()
def report(
    results: Annotated[list[Path], typer.Option(**_path("--results"),
                                                help="Results folder(s); repeat for several machines.")] = DEFAULT_RESULTS_DIR,
    out: Annotated[Path | None, typer.Option(**_path("--out"), help="Output folder (default: <first --results>/report).")] = None,
    formats: Annotated[str, typer.Option("--format", help="Comma-separated: md, csv, html, png.")] = "md,csv,png",
    backend: _many("Only these backends (repeatable or comma-separated).") = None,
    device: _many("Only these machines: cpu, cuda, a host, or part of a device name (H100).") = None,
    dataset: _many("Only accuracy on these datasets.") = None,
    precision: _many(f"Only these precisions: {', '.join(INFERENCE_PRECISIONS)}.") = None,
    batch_size: _many("Only these batch sizes.") = None,
    input_size: _many("Only these input sizes (px).") = None,
    pareto_on: Annotated[str, typer.Option(help="Cost of the Pareto front: latency, gmacs or parameters.")] = "latency",
) -> None:
    """Accuracy-vs-cost and per-joint tables (Markdown, CSV, HTML) and plots (PNG) from results folders."""
    filters = {k: v for k, v in locals().items() if k in ("backend", "device", "dataset", "precision", "batch_size", "input_size")}
    from hgbench.analysis.report import Filters, report_from_options
    with ui.user_errors():
        filters = Filters.from_options(**filters)
        rep, written = report_from_options(results, out, formats, filters, pareto_on)
    ui.print_report(rep, written, results)


@data_app.command("download")
def data_download(
    datasets: Annotated[list[str], typer.Argument(help=f"{spoken(DOWNLOADABLE)} (several allowed).")],
    to: Annotated[Path, typer.Option(**_path("--to"), help="Data folder; each dataset goes to <to>/<name>/.")],
    all_: Annotated[bool, typer.Option("--all", help="Also the optional archives (COCO train2017, 19 GB).")] = False,
    keep_archives: Annotated[bool, typer.Option(help="Keep the verified archives in <to>/.downloads.")] = False,
    base_url: Annotated[str | None, typer.Option(help="A mirror with the same file names.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds one network read may wait, and an attempt may go "
                                                "without 1 KiB of progress.")] = DEFAULT_TIMEOUT_S,
    retries: Annotated[int, typer.Option(help="Attempts per URL after a failed one.")] = DEFAULT_RETRIES,
) -> None:
    """Download, verify and safely extract the official archives; an interrupted download resumes."""
    from hgbench.data.download import check, check_download_request, download
    with ui.user_errors():
        check_download_request(datasets, timeout, retries, to, base_url)
    progress, on_event = ui.download_display()
    with ui.user_errors(), progress:
        results = [r for name in datasets for r in download(name, to, base_url=base_url, include_optional=all_, keep_archives=keep_archives,
                                                             retries=retries, timeout=timeout, on_event=on_event)]
    ui.print_downloads(results, to)
    ui.print_data_check(check(to, list(dict.fromkeys(datasets))))


@data_app.command("check")
def data_check(
    data_dir: Annotated[Path, typer.Argument(help="The folder given to `hgbench data download --to`.")],
    dataset: Annotated[list[str] | None, typer.Option(help="Check only this dataset (repeatable).")] = None,
) -> None:
    """What the loaders need and what is missing, per dataset; exit 1 when a dataset asked for (or partly present)
    is incomplete, or none is found."""
    from hgbench.data.download import check
    with ui.user_errors():
        reports = check(data_dir, dataset or None)
    ui.print_data_check(reports)
    ui.data_check_verdict(reports, data_dir, asked=bool(dataset))


@app.command()
def compare(
    baseline: Annotated[Path, typer.Argument(help="Results folder (or record file) of the baseline profile run.")],
    current: Annotated[Path, typer.Argument(help="Results folder (or record file) of the run to check.")],
    threshold: Annotated[list[str] | None, typer.Option(help="METRIC=PERCENT or METRIC=off, repeatable.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of the one-sided Mann-Whitney test.")] = 0.01,
    no_normalize: Annotated[bool, typer.Option("--no-normalize", help="Do not divide timings by the calibration.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="Show unchanged rows too.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", **_path("--json"), help="Also write the comparison as JSON here.")] = None,
) -> None:
    """Compare two profile runs record by record; exit 1 on a regression, 2 on bad input. Metrics and default
    thresholds: p50 10, p90 20, throughput 10, peak_memory 20, parameters 0, gmacs 0 (percent)."""
    from hgbench.analysis.compare import compare_results, parse_thresholds
    with ui.user_errors():
        comp = compare_results(baseline, current, parse_thresholds(threshold), alpha, not no_normalize, json_out)
    ui.comparison_verdict(comp, show_all=show_all)


@app.command("latency-check")
def latency_check(
    reference: Annotated[Path, typer.Option(**_path("--reference"), help="Committed reference records.")] = LATENCY_GATE_DIR,
    variants_: Variants = None,
    out: Annotated[Path | None, typer.Option(**_path("--out"), help="This run's records (default: a new temporary folder).")] = None,
    retries: Annotated[int, typer.Option(help="Re-measure a flagged variant this many times before failing.")] = 1,
    threshold: Annotated[list[str] | None, typer.Option(help="As hgbench compare (default: p50=50).")] = None,
    update: Annotated[bool, typer.Option(help="(Re)write the reference records instead (quiet machine!).")] = False,
) -> None:
    """CI latency gate: every variant's CPU forward pass (batch 1, 64 px, 1 thread) interleaved with a frozen
    network, against the committed reference; exit 1 on a regression confirmed by a re-measurement."""
    from hgbench.analysis.gate import GATE_THRESHOLDS, run_gate
    from hgbench.config import variant_names
    from hgbench.profile.gate import measure_variants, update_reference
    with ui.console.status("measuring") as status, ui.user_errors():
        if update:
            paths = update_reference(reference, variant_names(variants_), progress=lambda n: status.update(f"measuring {n} (reference)"))
            return ui.say(f"{len(paths)} reference records written to {reference}; commit them")
        final, attempts, folder = run_gate(reference, variant_names(variants_), out, thresholds=threshold or GATE_THRESHOLDS,
                                           retries=retries, measure=measure_variants, progress=lambda n: status.update(f"measuring {n}"))
    ui.gate_verdict(final, attempts, folder)


@app.command()
def score(
    predictions: Annotated[Path, typer.Argument(help="Prediction file (.mat/.h5): (N, 16, 2) or (16, 2, N) pixels.")],
    gt: Annotated[Path, typer.Option(**_path("--gt"), help="Ground truth: gt_valid_detections_our_format.mat or valid.h5.")],
    convention: Annotated[str, typer.Option(help="official (MPII toolkit) or bearpaw (eval_PCKh.py).")] = "official",
    fmt: Annotated[str, typer.Option("--format", help="md (table, curve every 0.1) or csv (curve every 0.01).")] = "md",
    threshold: Annotated[float, typer.Option(help="Table threshold, a fraction of the head size.")] = 0.5,
    key: Annotated[str | None, typer.Option(help="Variable holding the predictions (needed in a GT file).")] = None,
    zero_based: Annotated[bool, typer.Option(help="0-based pixels (OpenCV, hgbench): add 1 for MPII.")] = False,
    out: Annotated[Path | None, typer.Option(**_path("--out"), help="Also write the output to this file.")] = None,
) -> None:
    """Score an MPII prediction file: per-joint PCKh, Mean@0.1 and the PCKh curve over thresholds 0 to 0.5."""
    from hgbench.accuracy.mpii_files import score_report
    with ui.user_errors():
        text, notes = score_report(predictions, gt, convention, fmt, threshold, key, zero_based, out)
    ui.print_score(text, notes)


@app.command()
def schema(kind: Annotated[str, typer.Argument(help="variant or protocol")]) -> None:
    """Print the JSON Schema of a variant or protocol YAML file (for editors and CI checks)."""
    ui.print_schema(kind)
