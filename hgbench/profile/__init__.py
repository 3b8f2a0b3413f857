"""Cost of a model: parameters and MACs (:mod:`.complexity`), latency timing
(:mod:`.latency`), inference backends (:mod:`.backends`) and one profiling run that
produces a ``"profile"`` record body (:mod:`.run`).

fvcore and thop are imported only when MACs are counted.
"""

from hgbench.profile.backends import BACKENDS, Backend, get_backend
from hgbench.profile.complexity import MacCounts, count_macs, count_parameters
from hgbench.profile.latency import LatencyStats, time_callable
from hgbench.profile.run import complexity_record, profile_model, profile_record_path, save_profile_record

__all__ = [
    "BACKENDS",
    "Backend",
    "LatencyStats",
    "MacCounts",
    "complexity_record",
    "count_macs",
    "count_parameters",
    "get_backend",
    "profile_model",
    "profile_record_path",
    "save_profile_record",
    "time_callable",
]
