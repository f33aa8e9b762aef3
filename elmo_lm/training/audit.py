"""What a training step on an accelerator may do, and what it costs, measured on the CPU.

A step on a GPU must be one stream of kernels: it reads no value back to the host (a read waits
for everything queued before it) and copies nothing between devices. There is no GPU here, so a
step runs on the accelerator path (``path.use("accelerator")``), with the module and batch on the
``meta`` device (shapes, no data) or on the CPU posing as the device, under ``StepAudit``, which
records every aten operation it dispatches and sorts it:

- ``host_read``: the host needs a value (``.item()``, ``bool()``, ``.tolist()``,
  ``_local_scalar_dense``) or a shape that follows the data (``nonzero``, ``unique``,
  ``masked_select``, indexing with a boolean mask, ``repeat_interleave`` without
  ``output_size``, ``_coalesce``, ...); reads of registered tensors (Adagrad's step counters,
  which torch keeps on the CPU for every device) are ``allowed_read``.
- ``device_copy``: a ``_to_copy``/``copy_`` that changes device, or any operation whose tensors
  lie on more than one device (a real CPU tensor into a ``meta`` step counts), registered
  tensors apart.
- ``kernel``: everything else, but views and aliases, ``detach``, empty allocations (``free``),
  and operations on the host CPU only while the step's device is another (``host``: the step
  counters' arithmetic).

``estimate_peak_memory`` tracks the live bytes of tensor storages (on ``meta``: the memory a
device would hold), ``executed_flops`` counts FLOPs (``FlopCounterMode``), and
``elmo_lm.training.synthetic.original_shape_step`` builds the published original ELMo's
training step to measure.
"""

from __future__ import annotations

import collections
import os
import traceback
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from elmo_lm.cpu import path
from elmo_lm.training.gradients import clip_grad_norm
from elmo_lm.training.module import ElmoLM

KINDS = ("host_read", "allowed_read", "device_copy", "kernel", "host", "free")
# aten operations that read values on the host or make a shape from the data (overload packets):
# .item(), bool(), .tolist(); data-dependent sizes (bincount: from the largest value, _coalesce:
# the distinct indices); torch.equal and allclose answer a Python bool. (Not _assert_async: the
# device checks it, the host goes on.)
HOST_READS = frozenset(
    "_local_scalar_dense nonzero argwhere unique _unique _unique2 unique_dim unique_consecutive "
    "unique_dim_consecutive masked_select bincount _coalesce equal allclose is_nonzero".split()
)
_MASK_INDEXED = frozenset({"index", "index_put", "index_put_", "_index_put_impl_"})
_COPIES = frozenset({"_to_copy", "copy_", "copy", "_copy_from", "_copy_from_and_resize"})
# Allocations without a kernel, views the schema does not mark as aliases, metadata (a sparse
# tensor's flag, the profiler's markers that the optimizer's step records), and
# torch.tensor(...)'s lift (the host wrote the value).
FREE = frozenset(
    "empty empty_like empty_strided new_empty new_empty_strided empty_permuted _unsafe_view "
    "lift_fresh lift_fresh_copy detach detach_ set_ resize_ _coalesced_ _indices _values indices "
    "values _sparse_coo_tensor_with_dims_and_tensors is_coalesced _record_function_enter_new "
    "_record_function_exit".split()
)


@dataclass(frozen=True)
class Op:
    """One aten operation: name (``aten.mul.Tensor``), what ``StepAudit`` found (``compute``:
    kernel or host, as the step's device says), its tensors' devices, the caller's stack."""

    name: str
    found: str
    devices: tuple[str, ...]
    stack: str = ""


class StepAuditError(RuntimeError):
    """A step did what an accelerator's step may not (raised by ``StepAudit(fail=True)``)."""


class StepAudit(TorchDispatchMode):
    """Records and sorts every aten operation run inside it (the module's docstring has the
    kinds).

    Args:
        device: the step's device (``"meta"``, ``"cpu"`` for the CPU posing as the device,
            ``"cuda"``); None takes the first device other than the CPU that an operation
            touches, else the CPU.
        allowed: tensors the step may read on the host (Adagrad's CPU step counters); what is
            computed from them alone is allowed too. More with ``allow``.
        fail: raise ``StepAuditError`` at the first host read or device copy, naming it, with
            the step's Python stack.
        stacks: keep each bad operation's Python stack (``Op.stack``); always on with ``fail``.
        placeholders: in collect mode, answer host reads of and copies out of ``meta``
            tensors (which cannot run) with placeholders (1 for ``.item()``, empty selections),
            so that the rest of the step is recorded too.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        allowed: Iterable[torch.Tensor] = (),
        fail: bool = False,
        stacks: bool = False,
        placeholders: bool = True,
    ):
        super().__init__()
        self.device = None if device is None else torch.device(device).type
        self.fail = fail
        self.stacks = stacks or fail
        self.placeholders = placeholders
        self.ops: list[Op] = []
        self._allowed: set[int] = set()  # untyped storages' _cdata
        self.allow(allowed)

    def allow(self, tensors: Iterable[torch.Tensor]) -> None:
        """Lets the step read ``tensors`` (and views of them) on the host."""
        for t in tensors:
            key = _storage_key(t)
            if key is not None and key not in self._allowed:
                self._allowed.add(key)
                weakref.finalize(t.untyped_storage(), self._allowed.discard, key)

    def _is_allowed(self, t: torch.Tensor) -> bool:
        return _storage_key(t) in self._allowed

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        name = func.overloadpacket.__name__
        found, why = self._sort(func, name, args, kwargs, tensors)
        devices = tuple(sorted({t.device.type for t in tensors}))
        stack = _stack() if self.stacks and found in ("host_read", "device_copy") else ""
        op = Op(str(func), found, devices, stack)
        self.ops.append(op)
        if self.fail and found in ("host_read", "device_copy"):
            raise StepAuditError(f"{found} in the step: {op.name} ({why})\n{stack}")
        if found in ("host_read", "device_copy") and self.placeholders and "meta" in devices:
            placeholder = _placeholder(name, args, kwargs)
            if placeholder is not None:
                return placeholder
        out = func(*args, **kwargs)
        made = {t.device.type for t in tree_leaves(out) if isinstance(t, torch.Tensor)}
        if not made <= set(devices):  # a factory: where it made its tensors counts too
            self.ops[-1] = Op(op.name, found, tuple(sorted(made | set(devices))), stack)
        if found == "allowed":  # computed from registered tensors alone: registered too
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    self.allow([t])
        if self.device is None:
            self.device = next((d for d in devices if d != "cpu"), None)
        return out

    def _sort(self, func, name, args, kwargs, tensors) -> tuple[str, str]:
        """(what the operation is, why), ``compute`` standing for kernel or host."""
        allowed = bool(tensors) and all(self._is_allowed(t) for t in tensors)
        if name in HOST_READS or _masked_index(name, args) or _unsized_repeat(name, args, kwargs):
            if allowed:
                return "allowed_read", "a registered tensor"
            return "host_read", "reads a value or a data-dependent shape on the host"
        devices = {t.device for t in tensors if not self._is_allowed(t)}
        if name in _COPIES and tensors:
            target = kwargs.get("device")
            if name in ("copy_", "copy", "_copy_from", "_copy_from_and_resize"):
                devices = {t.device for t in tensors[:2]}
            elif target is not None:
                devices = {tensors[0].device, torch.device(target)}
            if len({d.type for d in devices}) > 1:
                return "device_copy", "copies " + " -> ".join(sorted(d.type for d in devices))
        elif len({d.type for d in devices}) > 1:
            return "device_copy", "mixes tensors of " + ", ".join(sorted(d.type for d in devices))
        if allowed:
            return "allowed", "registered tensors only"
        if name in FREE or _aliases(func):
            return "free", "a view, an alias or an empty allocation"
        return "compute", ""

    def kind(self, op: Op) -> str:
        """``op``'s kind (a name of ``KINDS``) for the step's device."""
        if op.found == "allowed":
            return "host"
        if op.found != "compute":
            return op.found
        device = self.device or "cpu"
        if device != "cpu" and op.devices and all(d == "cpu" for d in op.devices):
            return "host"
        return "kernel"

    def of_kind(self, kind: str) -> list[Op]:
        """The recorded operations of one kind, in order."""
        if kind not in KINDS:
            raise ValueError(f"{kind!r} is not a kind; use one of {', '.join(KINDS)}")
        return [op for op in self.ops if self.kind(op) == kind]

    host_reads = property(lambda self: self.of_kind("host_read"))
    device_copies = property(lambda self: self.of_kind("device_copy"))
    kernels = property(lambda self: self.of_kind("kernel"))

    def counts(self) -> dict[str, int]:
        """Operations per kind (every kind of ``KINDS``, 0 included)."""
        found = collections.Counter(self.kind(op) for op in self.ops)
        return {k: found.get(k, 0) for k in KINDS}

    def names(self, kind: str) -> collections.Counter:
        """How often each operation of one kind ran (``aten.nonzero.default``: 2)."""
        return collections.Counter(op.name for op in self.of_kind(kind))


def _storage_key(t: torch.Tensor) -> int | None:
    return t.untyped_storage()._cdata if t.layout == torch.strided else None


def _aliases(func) -> bool:
    """Whether the schema says the operation returns a view of an input (not written)."""
    returns = func._schema.returns
    return bool(returns) and all(
        r.alias_info is not None and not r.alias_info.is_write for r in returns
    )


def _masked_index(name: str, args) -> bool:
    index = args[1] if name in _MASK_INDEXED and len(args) > 1 else ()
    index = index if isinstance(index, list | tuple) else [index]
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in index)


def _unsized_repeat(name: str, args, kwargs) -> bool:
    if name != "repeat_interleave":
        return False
    repeats = args[1] if len(args) > 1 else kwargs.get("repeats", args[0] if args else None)
    return isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None


def _placeholder(name: str, args, kwargs):
    """What a host read or a copy out of ``meta`` answers in collect mode (None: run it)."""
    t = args[0]
    if name == "_local_scalar_dense":
        return True if t.dtype == torch.bool else 1.0 if t.is_floating_point() else 1
    if name in ("nonzero", "argwhere"):
        return torch.empty((0, t.dim()), dtype=torch.long, device=t.device)
    if name in ("masked_select", "repeat_interleave"):
        return t.new_empty((0,))
    if name == "index" and len(args[1]) == 1 and args[1][0].dtype in (torch.bool, torch.uint8):
        return t.new_empty((0, *t.shape[args[1][0].dim() :]))  # t[mask]: no row selected
    if name in ("index_put", "index_put_", "_index_put_impl_"):
        return t if name.endswith("_") else t.clone()  # no row selected
    if name == "_to_copy" and t.device.type == "meta":
        device = kwargs.get("device") or t.device
        return torch.empty(t.shape, dtype=kwargs.get("dtype") or t.dtype, device=device)
    if name == "copy_" and args[1].device.type == "meta" and t.device.type != "meta":
        return t  # into a real tensor: its values stay
    return None


_SKIPPED = (os.path.dirname(os.path.abspath(torch.__file__)), os.path.abspath(__file__))


def _stack(frames: int = 6) -> str:
    """The last ``frames`` frames of the step's own Python code (not torch's nor this file's)."""
    kept = [f for f in traceback.extract_stack() if not f.filename.startswith(_SKIPPED)]
    return "".join(traceback.format_list(kept[-frames:]))


class MemoryTracker(TorchDispatchMode):
    """Live bytes of the tensor storages that operations inside it create (each storage once,
    freed when Python frees it), and their peak; ``baseline`` tensors (parameters, optimizer
    state made before) count from the start. ``granularity``: round each storage up to this
    many bytes (CUDA's caching allocator rounds to 512)."""

    def __init__(self, baseline: Iterable[torch.Tensor] = (), granularity: int = 1):
        super().__init__()
        self.granularity = granularity
        self.live: dict[int, int] = {}  # storage _cdata -> bytes
        self.current = self.peak = 0
        for t in baseline:
            self.track(t)

    def track(self, t: torch.Tensor) -> None:
        """Counts ``t``'s storage (or a sparse tensor's indices and values) while it lives."""
        if t.is_sparse:
            return self.track(t._indices()) or self.track(t._values())
        if t.layout != torch.strided:
            return
        storage = t.untyped_storage()
        key = storage._cdata
        size = -(-storage.nbytes() // self.granularity) * self.granularity
        before = self.live.get(key)
        if before is None:
            weakref.finalize(storage, self._free, key)
            before = 0
        if size > before:  # new, or resized
            self.live[key] = size
            self.current += size - before
            self.peak = max(self.peak, self.current)

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.track(t)
        return out


def estimate_peak_memory(
    fn: Callable[[], object], baseline: Iterable[torch.Tensor] = (), granularity: int = 1
) -> int:
    """Peak bytes of live tensor storages while ``fn()`` runs: ``baseline`` (tensors made
    before, e.g. parameters and optimizer state) plus what ``fn`` creates, each storage counted
    once, until freed. On ``meta`` tensors, the memory the step would hold on a device
    (allocator overhead and kernels' workspaces apart)."""
    with MemoryTracker(baseline, granularity) as tracker:
        fn()
    return tracker.peak


def executed_flops(fn: Callable[[], object]) -> int:
    """The FLOPs of ``fn()``'s operations, as torch.utils.flop_counter counts them (matmuls,
    convolutions, attention: the operations that dominate; elementwise ones count 0)."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


@dataclass
class TrainStep:
    """One training step of an ``ElmoLM`` as ``Trainer`` runs it (zero the gradients; loss *
    unroll_steps; backward; global-norm clip; Adagrad), on path ``path``; its phases apart
    (``loss``, ``clip``, ``update``) for benchmarks to time."""

    module: ElmoLM
    optimizer: torch.optim.Optimizer
    batch: dict
    path: str = "accelerator"

    def loss(self, batch: dict | None = None) -> torch.Tensor:
        """The loss whose gradient a step takes, ``lm_loss * unroll_steps``, from
        ``ElmoLM.training_step`` (which prepares an accelerator's softmax row buffers); the
        metrics are not logged (no Trainer)."""
        batch = self.batch if batch is None else batch
        self.module._log_step = False
        return self.module.training_step({"stream_id": 0, "reset": True, **batch}, 0)

    def backward(self, loss: torch.Tensor) -> None:
        """The backward pass and what the module does after it (the softmax's gradients)."""
        loss.backward()
        self.module.on_after_backward()

    def clip(self) -> torch.Tensor:
        return clip_grad_norm(self.module.parameters(), self.module.options.all_clip_norm_val)

    def update(self) -> None:
        self.optimizer.step()

    def __call__(self) -> torch.Tensor:
        with path.use(self.path):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss()
            self.backward(loss)
            self.clip()
            self.update()
        return loss.detach()

    def host_counters(self) -> list[torch.Tensor]:
        """The optimizer's step counters (torch keeps them on the CPU for every device)."""
        return [s["step"] for s in self.optimizer.state.values() if "step" in s]

    def resident(self) -> list[torch.Tensor]:
        """What lives between steps: parameters, buffers, gradients, optimizer state."""
        params = list(self.module.parameters())
        grads = [p.grad for p in params if p.grad is not None]
        state = [v for s in self.optimizer.state.values() for v in s.values()]
        tensors = params + list(self.module.buffers()) + grads + state
        return [t for t in tensors if isinstance(t, torch.Tensor)]
