"""Model size and compute: parameters, size in MiB, FLOPs and MACs, activation memory, with
what each counter skipped.

The headline count is ``torch.utils.flop_counter.FlopCounterMode`` (maintained with torch,
always available); fvcore and thop are optional cross-checks (``pip install
'hgbench[counters]'``), because the literature quotes all three and they disagree on
everything that is not a convolution or a linear layer. A cross-check that is not installed
(or, for thop 0.1.1, cannot be imported: it is unmaintained and imports ``distutils``, gone
from Python 3.12) counts ``None``, with the reason.

* **torch.utils.flop_counter** (``FlopCounterMode``, a ``TorchDispatchMode``) counts
  **FLOPs = 2 x MACs** for the operators in its registry only (``flop_registry``: mm, addmm,
  bmm, baddbmm, convolution and its variants, attention kernels); the headline MACs are its
  FLOPs / 2. Every other aten operator counts 0; it first tries to decompose an operator it
  has no formula for, so the skipped list names the operators that actually executed (e.g.
  nearest upsampling shows up as ``aten._unsafe_index``, ``aten.mul``, ``aten.arange``). View
  operators and tensor-creation operators (no tensor input: ``aten.empty``, ``aten.arange``)
  are left out of that list: they compute nothing.
* **fvcore** (``FlopCountAnalysis``) traces the model with the TorchScript tracer and counts
  per aten operator. Despite its name it counts "one fused multiply-add as one flop"
  (fvcore's own docstring), so its total is in **MACs**. Besides conv/linear/matmul it also
  counts, by default, batch norm (1 per element, 2 with affine), group/layer/instance norm,
  upsampling (nearest: 1 per output element, bilinear: 4) and adaptive average pooling.
  Operators without a handler (e.g. ``aten::add`` of the residual connections,
  ``aten::relu``, ``aten::max_pool2d``) count 0; they are listed with their call counts.
* **thop** (``thop.profile``) hooks ``nn.Module`` s of known types and returns **MACs**. It
  never sees functional calls (``torch.add``, ``F.interpolate``, ``x + y``) and counts 0 for a
  leaf module of a type it has no rule for (listed: the types of the leaf modules that ran);
  batch norm counts 2 per element (4 with affine).

Convolution conventions (checked against closed forms in ``tests/profile/test_complexity.py``), per
sample, kernel ``k x k``, ``g`` groups:

* ``Conv2d``: all three give ``C_out * H_out * W_out * (C_in / g) * k * k`` MACs
  (flop_counter: twice that in FLOPs). None counts the bias addition.
* Depthwise ``Conv2d`` (``g = C_in = C_out = C``): ``C * H_out * W_out * k * k`` MACs.
* ``ConvTranspose2d``: the true count is ``C_in * (C_out / g) * k * k * H_in * W_in`` MACs
  (every input pixel scatters a ``k x k`` kernel to every output channel of its group);
  flop_counter and fvcore compute exactly that. **thop is wrong for a stride > 1**: it applies
  the convolution formula to the *output*, ``C_out * H_out * W_out * (C_in / g) * k * k``,
  which for stride ``s`` is about ``s^2`` times the true count (4x for the usual stride-2
  deconvolution). Its total for the deconvolution variants is too high accordingly.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import importlib.metadata
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from hgbench.fileio import atomic_write_json
from hgbench.models import count_parameters
from hgbench.paths import source_digest
from hgbench.records.key import architecture_hash

# Deprecation noise from the counters themselves: fvcore's import scripts a loss function
# (torch.jit.script is deprecated in torch 2.13) and thop 0.1.1 uses distutils' LooseVersion.
_NOISE = (r"`torch\.jit\.\w+` is deprecated", r"distutils Version classes are deprecated")
MIB = 2**20
FP32_BYTES = 4
CROSS_CHECKS = ("fvcore", "thop")
"""The optional counters of the ``counters`` extra, in the order they are reported."""


@dataclass(frozen=True)
class FlopCounts:
    """FLOPs of one forward pass from ``torch.utils.flop_counter.FlopCounterMode``: the
    headline count.

    Attributes:
        flops: total FLOPs (2 x MACs for conv/matmul; everything else 0).
        by_operator: FLOPs per counted aten operator, e.g. ``{"aten.convolution": ...}``.
        skipped: aten operators that ran without a FLOP formula (counted as 0), sorted,
            views and tensor creation left out (see the module docstring).
    """

    flops: int
    by_operator: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        """The total in GFLOPs (10^9 FLOPs)."""
        return self.flops / 1e9

    @property
    def macs(self) -> int:
        """The headline MACs: FLOPs / 2 (every counted operator is a multiply-accumulate)."""
        return self.flops // 2

    @property
    def gmacs(self) -> float:
        """The headline count in GMACs (10^9 MACs)."""
        return self.macs / 1e9


@dataclass(frozen=True)
class MacCounts:
    """Multiply-accumulates of one forward pass from the optional cross-check counters.

    A counter that could not be imported has ``None`` for its count and its skipped list,
    and its reason in ``unavailable``.

    Attributes:
        fvcore_macs: fvcore ``FlopCountAnalysis(...).total()``, in MACs, or None.
        thop_macs: ``thop.profile(...)[0]``, in MACs, or None.
        fvcore_skipped: operators fvcore had no handler for (counted as 0), with how many
            times each was called, e.g. ``{"aten::add": 24}``; None without fvcore.
        fvcore_by_operator: fvcore's MACs per operator kind, e.g. ``{"conv": ..., "batch_norm": ...}``.
        thop_skipped: class names of the leaf modules that ran and that thop has no rule for
            (counted as 0), sorted, e.g. ``["Identity", "Sigmoid"]``; None without thop.
        unavailable: counter name -> why it did not count, e.g.
            ``{"thop": "thop not installed: pip install 'hgbench[counters]'"}``; empty when both ran.
    """

    fvcore_macs: int | None
    thop_macs: int | None
    fvcore_skipped: dict[str, int] | None = field(default_factory=dict)
    fvcore_by_operator: dict[str, int] = field(default_factory=dict)
    thop_skipped: list[str] | None = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def fvcore_gmacs(self) -> float | None:
        """fvcore's count in GMACs (10^9 MACs), or None without fvcore."""
        return None if self.fvcore_macs is None else self.fvcore_macs / 1e9

    @property
    def thop_gmacs(self) -> float | None:
        """thop's count in GMACs (10^9 MACs), or None without thop."""
        return None if self.thop_macs is None else self.thop_macs / 1e9


def model_size_mib(model: nn.Module, bytes_per_element: int = FP32_BYTES) -> float:
    """Size of the weights in MiB (2^20 bytes): every floating-point parameter and buffer
    (batch-norm running mean/var included) at ``bytes_per_element`` bytes (default 4, float32),
    whatever their current dtype. Integer buffers (batch norm's ``num_batches_tracked``) are
    bookkeeping and not counted; a tensor shared by several modules counts once."""
    tensors = {id(t): t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}
    return sum(t.numel() for t in tensors.values()) * bytes_per_element / MIB


def _device_and_input(model: nn.Module, input_shape: tuple[int, ...]) -> Tensor:
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return torch.zeros(input_shape, device=device, dtype=dtype)


@contextlib.contextmanager
def _eval(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _leaf_modules(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if next(m.children(), None) is None]


def _unavailable(counter: str, error: ImportError) -> str:
    """Why ``counter`` could not be imported, with the fix, in one line."""
    if (error.name or "").split(".")[0] == counter:
        return f"{counter} not installed: pip install 'hgbench[counters]'"
    if error.name == "distutils":
        return (
            f"{counter} could not be imported ({error}): thop 0.1.1 needs distutils, "
            "removed in Python 3.12; pip install setuptools"
        )
    return f"{counter} could not be imported: {error}"


def _import_counters() -> tuple[dict[str, Any], dict[str, str]]:
    """The cross-check counters that import: ``({"fvcore": FlopCountAnalysis, "thop": (profile,
    rules)}, {name: reason})`` with each counter in exactly one of the two dicts."""
    found: dict[str, Any] = {}
    missing: dict[str, str] = {}
    with warnings.catch_warnings():
        for message in _NOISE:
            warnings.filterwarnings("ignore", message=message)
        try:
            from fvcore.nn import FlopCountAnalysis

            found["fvcore"] = FlopCountAnalysis
        except ImportError as e:
            missing["fvcore"] = _unavailable("fvcore", e)
        try:
            from thop import profile as thop_profile
            from thop.profile import register_hooks as thop_rules

            found["thop"] = (thop_profile, thop_rules)
        except ImportError as e:
            missing["thop"] = _unavailable("thop", e)
    return found, missing


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> MacCounts:
    """Count the MACs of one forward pass of ``model`` on a zero tensor of ``input_shape`` with
    the cross-check counters fvcore and thop (the headline count is :func:`count_flops`).

    The count is for the whole input, batch dimension included: pass a batch of 1 for
    per-sample MACs. The model runs in eval mode under ``torch.no_grad()`` on the device and
    dtype of its parameters (CPU for a fresh model); its training mode is restored
    afterwards, and thop works on a deep copy (it adds buffers and hooks while it counts).
    The counters' own log lines, prints and deprecation warnings are silenced; what they
    skipped is returned (see the module docstring for what each counts). A counter that is
    not installed (extra ``counters``) counts None, with its reason in ``unavailable``.

    Raises:
        Whatever the model's forward raises on such an input.
    """
    counters, unavailable = _import_counters()
    fvcore_total = thop_total = fvcore_skipped = thop_skipped = None
    by_operator: dict[str, int] = {}

    x = _device_and_input(model, input_shape)
    with _eval(model), torch.no_grad(), warnings.catch_warnings():
        for message in _NOISE:
            warnings.filterwarnings("ignore", message=message)
        if "fvcore" in counters:
            analysis = (
                counters["fvcore"](model, (x,))
                .unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False)
                .tracer_warnings("none")
            )
            fvcore_total = round(analysis.total())
            fvcore_skipped = dict(analysis.unsupported_ops())
            by_operator = {op: round(n) for op, n in analysis.by_operator().items()}

        if "thop" in counters:
            thop_profile, thop_rules = counters["thop"]
            thop_model = copy.deepcopy(model)
            ran: set[type] = set()
            hooks = [m.register_forward_hook(lambda m, i, o: ran.add(type(m))) for m in _leaf_modules(thop_model)]
            with contextlib.redirect_stdout(io.StringIO()):  # thop prints "[INFO] Register ..."
                total, _ = thop_profile(thop_model, inputs=(x,), verbose=False)
            for h in hooks:
                h.remove()
            del thop_model
            thop_total = round(total)  # thop returns a float
            thop_skipped = sorted({t.__name__ for t in ran if t not in thop_rules})

    return MacCounts(
        fvcore_macs=fvcore_total,
        thop_macs=thop_total,
        fvcore_skipped=fvcore_skipped,
        fvcore_by_operator=by_operator,
        thop_skipped=thop_skipped,
        unavailable=unavailable,
    )


class _OpsSeen(TorchDispatchMode):
    """Records the aten operators that execute (with tensor inputs, not views)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        if not func.is_view and any(isinstance(a, Tensor) for a in flat):
            self.ops.add(str(func.overloadpacket))
        return func(*args, **kwargs)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> FlopCounts:
    """Count the FLOPs of one forward pass of ``model`` on a zero tensor of ``input_shape``
    with ``torch.utils.flop_counter.FlopCounterMode`` (batch included, like :func:`count_macs`):
    the headline count (``FlopCounts.macs`` = FLOPs / 2).

    The model runs in eval mode under ``torch.no_grad()``; its training mode is restored.
    The skipped operators are found by a second dispatch mode entered *below* the flop
    counter: it sees exactly the operators the counter executed after its own
    decompositions, and those whose overload packet is not in
    ``torch.utils.flop_counter.flop_registry`` are the ones counted as 0.

    Raises:
        Whatever the model's forward raises on such an input.
    """
    x = _device_and_input(model, input_shape)
    seen = _OpsSeen()
    counter = FlopCounterMode(display=False)
    # `counter` is entered last, so it is the outermost mode: it runs first, `seen` below it
    with _eval(model), torch.no_grad(), seen, counter:
        model(x)
    registered = {str(packet) for packet in flop_registry if isinstance(packet, torch._ops.OpOverloadPacket)}
    by_operator = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return FlopCounts(
        flops=int(counter.get_total_flops()),
        by_operator=by_operator,
        skipped=sorted(seen.ops - registered),
    )


def activation_memory_mib(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Sum of the output sizes of every leaf module (a module without children) in one
    forward pass on a zero tensor of ``input_shape``, at 4 bytes (float32) per element, in MiB.

    A convention, not the allocator's peak: every leaf output counts once, also when it
    aliases its input (an in-place ReLU) or is freed right after its use; functional
    operations outside leaf modules (``x + y``, ``F.interpolate``) add nothing. It is what an
    inference engine would have to write once if it materialised every layer's output.

    Raises:
        Whatever the model's forward raises on such an input.
    """
    total = 0

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        flat, _ = tree_flatten(output)
        total += sum(t.numel() for t in flat if isinstance(t, Tensor)) * FP32_BYTES

    x = _device_and_input(model, input_shape)
    hooks = [m.register_forward_hook(hook) for m in _leaf_modules(model)]
    try:
        with _eval(model), torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return total / MIB


def complexity_record(model: nn.Module, input_size: int) -> dict[str, Any]:
    """Size and compute of ``model`` for one sample of shape ``(1, 3, input_size, input_size)``:
    the complexity keys of a ``"profile"`` record (see :func:`hgbench.profile.run.profile_model`).

    Independent of backend, precision and batch size: compute it once per model and pass it
    to :func:`hgbench.profile.run.profile_model` as ``complexity``.

    Returns:
        ``parameters`` (count), ``model_size_mib`` (float32 weights and buffers, MiB),
        ``macs`` (``{"flop_counter": int, "fvcore": int | None, "thop": int | None, "unit":
        "MACs", "input_shape": [1, 3, S, S], "unavailable": {counter: reason}}``; the
        headline is ``flop_counter`` = its FLOPs / 2), ``gflops_flop_counter`` (10^9 FLOPs),
        ``gmacs_fvcore``, ``gmacs_thop`` (10^9 MACs, None where the counter is not
        installed), ``skipped_ops`` (``{"flop_counter": [ops], "fvcore": {op: calls} | None,
        "thop": [module types] | None}``) and ``activation_memory_mib`` (float32 leaf
        outputs, MiB), all per sample.

    Raises:
        Whatever the model's forward raises (see :func:`count_flops`).
    """
    shape = (1, 3, input_size, input_size)
    flops = count_flops(model, shape)
    macs = count_macs(model, shape)
    return {
        "parameters": count_parameters(model),
        "model_size_mib": model_size_mib(model),
        "macs": {
            "flop_counter": flops.macs,
            "fvcore": macs.fvcore_macs,
            "thop": macs.thop_macs,
            "unit": "MACs",
            "input_shape": list(shape),
            "unavailable": macs.unavailable,
        },
        "gmacs_fvcore": macs.fvcore_gmacs,
        "gmacs_thop": macs.thop_gmacs,
        "gflops_flop_counter": flops.gflops,
        "skipped_ops": {"flop_counter": flops.skipped, "fvcore": macs.fvcore_skipped, "thop": macs.thop_skipped},
        "activation_memory_mib": activation_memory_mib(model, shape),
    }


COMPLEXITY_CACHE = "complexity"
"""Folder of the cache directory (``hgbench profile --cache-dir``) that holds complexity records."""
_COUNTED_BY = ("models", "profile/complexity.py")
"""The sources of hgbench whose code decides a network's complexity (relative to the package):
the model code and this counter; their bytes are part of the cache key."""


def complexity_cache_key(spec: Any, num_joints: int, input_size: int, device: str = "cpu") -> str:
    """The file stem of a complexity count in the cache: a SHA-256 over the variant's network
    (:func:`hgbench.records.architecture_hash`: variants that differ only in training, as hg8
    and hg8-adam-b16, share a count),
    the heatmap count, the input side, the device kind counted on (the ops a counter skips may
    differ), the versions of torch, fvcore and thop, and the bytes of
    hgbench's model code and of this module (:data:`_COUNTED_BY`): whatever can change a count
    changes the key."""
    code, versions = _counting_code(_COUNTED_BY)
    key = {"network": architecture_hash(spec), "joints": int(num_joints), "size": int(input_size), "device": device,
           "code": code, "versions": versions}  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


@functools.lru_cache(maxsize=4)
def _counting_code(counted_by: tuple[str, ...]) -> tuple[str, dict[str, str | None]]:
    """The SHA-256 of the sources ``counted_by`` (relative to the package,
    :func:`hgbench.paths.source_digest`) and the versions of the counters, read once per process
    (a sweep asks once per variant)."""
    versions = {}
    for dist in ("torch", "fvcore", "thop"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return source_digest(*counted_by), versions


def cached_complexity_record(
    model: nn.Module, spec: Any, num_joints: int, input_size: int, cache_dir: str | Path
) -> dict[str, Any]:
    """:func:`complexity_record` of ``model`` (built from ``spec`` with ``num_joints`` heatmaps),
    read from ``<cache_dir>/complexity/<key>.json`` (:func:`complexity_cache_key`) when an
    earlier sweep counted the same network with the same code, else counted and written there
    (atomically; a cache that cannot be written only costs the next sweep the count again).
    Counting takes 1-6 s per variant on one CPU core (hg1 to hru8 at 64 px), the same in every
    sweep: cached, a sweep's second run spends its time measuring (issue 29).

    Raises:
        Whatever :func:`complexity_record` raises.
    """
    device = next((t.device.type for t in (*model.parameters(), *model.buffers())), "cpu")
    path = Path(cache_dir) / COMPLEXITY_CACHE / f"{complexity_cache_key(spec, num_joints, input_size, device)}.json"
    try:
        found = json.loads(path.read_text())
        if isinstance(found, dict) and found.get("parameters"):
            return found
    except (OSError, ValueError):
        pass
    counted = complexity_record(model, input_size)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, counted)
    except OSError:
        pass
    return counted
