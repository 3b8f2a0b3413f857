"""Cost of a model: complexity (:mod:`.complexity`: parameters, MiB, MACs, FLOPs, activation
memory), latency timing (:mod:`.latency`), peak memory (:mod:`.memory`), inference backends
(:mod:`.backends`), numerical check (:mod:`.numerics`), device ceilings and roofline floors
(:mod:`.roofline`), TF32 on or off through both of torch's APIs (:mod:`.tf32`), a
calibration workload timed during every run (:mod:`.calibration`) and as probes around each
timing window (:mod:`.quiet`), one profiling run that produces a
:class:`hgbench.records.ProfileRecord` (:mod:`.run`), a sweep over variants, backends,
precisions and batch sizes in interleaved repetitions (:mod:`.sweep`), the options of
``hgbench profile`` checked into a plan (:mod:`.plan`) and the measuring half of the CI latency
gate (:mod:`.gate`; its verdict is :mod:`hgbench.analysis.gate`).

fvcore and thop are imported only when MACs are counted.
"""

from hgbench.profile.backends import (
    BACKENDS,
    Backend,
    Prepared,
    RunSettings,
    get_backend,
)
from hgbench.profile.calibration import measure_calibration
from hgbench.profile.complexity import (
    FlopCounts,
    MacCounts,
    activation_memory_mib,
    complexity_record,
    count_flops,
    count_macs,
    count_parameters,
    model_size_mib,
)
from hgbench.profile.latency import (
    LatencyStats,
    default_threads,
    fixed_threads,
    physical_cores,
    time_callable,
)
from hgbench.profile.memory import PeakMemory
from hgbench.profile.roofline import Ceilings, get_ceilings, measure_ceilings
from hgbench.profile.run import (
    make_input,
    profile_model,
    reference_output,
    repeat_timing,
    save_profile_record,
)
from hgbench.profile.sweep import Budget, run_sweep

__all__ = [
    "BACKENDS",
    "Backend",
    "Budget",
    "Ceilings",
    "FlopCounts",
    "LatencyStats",
    "MacCounts",
    "PeakMemory",
    "Prepared",
    "RunSettings",
    "activation_memory_mib",
    "complexity_record",
    "count_flops",
    "count_macs",
    "count_parameters",
    "default_threads",
    "fixed_threads",
    "get_backend",
    "get_ceilings",
    "make_input",
    "measure_calibration",
    "measure_ceilings",
    "model_size_mib",
    "physical_cores",
    "profile_model",
    "reference_output",
    "repeat_timing",
    "run_sweep",
    "save_profile_record",
    "time_callable",
]
