"""Gradient helpers of plain torch: the global-norm clip and the average over ranks, both
keeping sparse gradients (the softmax rows) sparse."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist

from elmo_lm.cpu import kernels
from elmo_lm.cpu.path import may_read_on_host


def clip_grad_norm(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clips the global L2 norm of all gradients, dense or sparse, to ``max_norm``.

    Sparse gradients are coalesced first (their norm is that of the summed rows), and stay sparse.

    Returns:
        The norm before clipping.
    """
    grads = []
    plan = None  # the softmax's weight and bias gradients share their rows: one row table
    for p in parameters:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad, plan = _coalesce_rows(p.grad, plan)
            grads.append(p.grad._values())
        else:
            grads.append(p.grad)
    if not grads:
        return torch.tensor(0.0)
    if all(g.dtype == torch.float32 and g.device == grads[0].device for g in grads):
        # One call each for the norms and the scaling (torch.nn.utils.clip_grad_norm_'s way).
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        torch._foreach_mul_(grads, scale)
        return total
    total = torch.linalg.vector_norm(
        torch.stack(
            [
                torch.linalg.vector_norm(g.detach(), dtype=torch.float32).to(grads[0].device)
                for g in grads
            ]
        )
    )
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.to(g.device, g.dtype))
    return total


def coalesce_rows(grad: torch.Tensor) -> torch.Tensor:
    """``grad.coalesce()`` of a sparse gradient with a sparse first dimension: its distinct
    rows in increasing order, each the sum of its entries (in the order they came).

    On the CPU, the rows are found through a table over the first dimension (one pass; one C
    loop on the native path) instead of a sort of the entries, several times faster for the
    sampled softmax's ~17,000 entries (docs/PERFORMANCE.md); on other devices, ``coalesce``.
    """
    return _coalesce_rows(grad)[0]


def padded_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse gradient's rows summed per distinct row without reading anything on the host:
    (n,) row ids and (n, *row) sums for its n entries, the distinct rows first (increasing),
    then slots of zeros (row 0). Summing or index-adding them gives the coalesced gradient's
    result exactly, and the shapes do not depend on the data (an accelerator's step)."""
    return padded_entries(grad._indices()[0], grad._values())


def padded_entries(
    entries: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``padded_rows`` of the entries (n,) and their rows (n, *row): one stable sort."""
    entries, order = entries.sort(stable=True)
    first = torch.ones_like(entries, dtype=torch.bool)
    first[1:] = entries[1:] != entries[:-1]
    slot = first.cumsum(0) - 1  # (n,) each entry's distinct row
    rows = torch.zeros_like(entries).scatter_(0, slot, entries)
    sums = torch.zeros_like(values).index_add_(0, slot, values[order])
    return rows, sums


def set_row_gradients(
    weight: torch.nn.Parameter, bias: torch.nn.Parameter, ids: torch.Tensor, grads: torch.Tensor
) -> None:
    """The softmax's gradients from its row buffers (``Softmax.row_gradient``): the entries
    ``ids`` (K,) with rows ``grads`` (K, P + 1), weight columns then the bias, summed per row
    by one sort for both (``padded_entries``: fixed shapes, no host read) into sparse
    gradients of K entries, the distinct rows then zero rows at row 0. They are marked
    coalesced, which is what their readers need: ``clip_grad_norm`` and ``RowAdagrad`` read
    them as they are (a zero row changes neither a norm nor an update), with no sort again.

    Gradients already there (``accumulate_grad_batches``: an earlier backward's) are summed in:
    their entries join these before the sort."""
    if weight.grad is not None and weight.grad.is_sparse and bias.grad is not None:
        earlier = torch.cat([weight.grad._values(), bias.grad._values()], 1).to(grads.dtype)
        ids, grads = torch.cat([weight.grad._indices()[0], ids]), torch.cat([earlier, grads])
    rows, sums = padded_entries(ids, grads)
    p = weight.shape[1]
    weight.grad = torch.sparse_coo_tensor(
        rows[None], sums[:, :p].to(weight.dtype), weight.shape, is_coalesced=True
    )
    bias.grad = torch.sparse_coo_tensor(
        rows[None], sums[:, p:].to(bias.dtype), bias.shape, is_coalesced=True
    )


class PackedRowGather:
    """The DDP average of the softmax's row buffers: each rank's ids and gradient rows packed
    as one buffer [id | weight row | bias] (K, P + 2), the same size on every rank (equal
    batches look up equally many rows), gathered by one ``all_gather_into_tensor``. ``start``
    is called by a hook as soon as the gradient exists (the softmax's is the first of the
    backward), so the collective runs while the rest of the backward does; ``finish`` waits.
    Where the backend lacks the collective, the list form over the same packed buffer."""

    def __init__(self):
        self._pending: tuple | None = None

    def start(self, ids: torch.Tensor, grads: torch.Tensor, n_classes: int) -> None:
        # The ids ride in the rows' dtype, exact to 2**24 classes in float32; else float64.
        exact = grads.dtype == torch.float32 and n_classes <= 2**24
        dtype = grads.dtype if exact else torch.float64
        packed = torch.cat([ids.to(dtype)[:, None], grads.to(dtype)], 1)
        world = dist.get_world_size()
        out = packed.new_empty(world * packed.shape[0], packed.shape[1])
        try:
            work = dist.all_gather_into_tensor(out, packed, async_op=True)
        except (RuntimeError, NotImplementedError, AttributeError):
            parts = list(out.chunk(world))
            work = dist.all_gather(parts, packed, async_op=True)
        self._pending = (work, out, grads.dtype, world)

    def finish(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Every rank's ids (W K,) and their rows averaged over the ranks (W K, P + 1)."""
        if self._pending is None:
            return None
        work, out, dtype, world = self._pending
        self._pending = None
        work.wait()
        return out[:, 0].long(), (out[:, 1:] / world).to(dtype)


class RowBufferGradients:
    """The sampled softmax's gradient on an accelerator: fixed-shape row buffers
    (``Softmax.use_row_buffers``) made sparse gradients by ``set_row_gradients``, under DDP
    averaged by a ``PackedRowGather`` that a hook starts as soon as their gradient exists. A
    softmax tied to the word embedding has a second buffer, the inputs' rows: both go into
    the one gradient (and the one gather) of the shared matrix."""

    def __init__(self, softmax):
        self.softmax = softmax
        self._gather: PackedRowGather | None = None
        self._hooked: torch.Tensor | None = None  # the buffer the gather's hook is on

    def prepare(self, n_targets: int, like: torch.Tensor, distributed: bool) -> None:
        """Before the step's forward: the buffers for ``n_targets`` per direction."""
        softmax = self.softmax
        softmax.use_row_buffers(n_targets, like)
        # A tied softmax's input rows get their gradient last (the embedding is the first
        # layer): the gather then packs both buffers' rows, one gradient of the one matrix.
        sink = softmax.input_grads if softmax.tied else softmax.row_grads
        if distributed and self._hooked is not sink:
            self._gather = gather = PackedRowGather()

            def start(buffer: torch.Tensor) -> None:
                gather.start(*softmax.row_gradient(), softmax.n_classes)

            sink.register_post_accumulate_grad_hook(start)
            self._hooked = sink

    def finish(self, distributed: bool) -> bool:
        """After the backward: the softmax's gradients set (averaged over the ranks); False
        when the step did not use the buffers."""
        rows = self.softmax.row_gradient()
        if rows is None:
            return False
        if distributed:
            rows = self._gather.finish()
        set_row_gradients(self.softmax.weight, self.softmax.bias, *rows)
        return True


def _coalesce_rows(grad: torch.Tensor, plan=None) -> tuple[torch.Tensor, object]:
    """``coalesce_rows``, and its plan (entries, distinct rows, each entry's row slot), which
    a later call reuses when its gradient has the same entries (the softmax's weight and bias).
    Where the host may not read values (``path.may_read_on_host``), the rows of
    ``padded_rows``: an uncoalesced tensor with the same sum."""
    if grad.sparse_dim() == 1 and not grad.is_coalesced() and not may_read_on_host(grad):
        rows, sums = padded_rows(grad)
        return torch.sparse_coo_tensor(rows[None], sums, grad.shape), plan
    if grad.is_coalesced() or grad.device.type != "cpu" or grad.sparse_dim() != 1:
        return grad.coalesce(), plan
    entries, values = grad._indices()[0], grad._values()  # (n,), (n, *row)
    coalesced = kernels.coalesce_rows(entries, values, grad.shape[0])  # one C pass
    if coalesced is not None:
        rows, summed = coalesced
        return torch.sparse_coo_tensor(rows[None], summed, grad.shape, is_coalesced=True), plan
    if plan is None or not (plan[0].shape == entries.shape and torch.equal(plan[0], entries)):
        seen = torch.zeros(grad.shape[0], dtype=torch.bool)
        seen[entries] = True
        rows = seen.nonzero().squeeze(1)  # (k,) increasing
        slot = torch.empty(grad.shape[0], dtype=torch.long)
        slot[rows] = torch.arange(len(rows))
        plan = (entries, rows, slot[entries])
    _, rows, slots = plan
    summed = values.new_zeros(len(rows), *values.shape[1:]).index_add_(0, slots, values)
    return torch.sparse_coo_tensor(rows[None], summed, grad.shape, is_coalesced=True), plan


def all_reduce_mean_grads(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Averages gradients over the ranks of ``torch.distributed``, keeping sparse ones sparse.

    A sparse gradient is all-gathered (row ids and rows from every rank) and summed, which works
    on gloo and NCCL alike and moves only the touched rows. Where the host may not read values
    (accelerators), each rank sends its ``padded_rows`` as they are, with no size exchange: a
    training step's sparse gradients have the same number of entries on every rank (targets and
    negatives of equal batches).
    """
    world = dist.get_world_size()
    for p in parameters:
        g = p.grad
        if g is None:
            continue
        if not g.is_sparse:
            dist.all_reduce(g)
            g.div_(world)
            continue
        if not may_read_on_host(g):  # every rank has as many entries: gather them as they are
            all_rows, all_values = _all_gather_rows(*padded_rows(g), world)
            values = torch.cat(all_values) / world
            p.grad = torch.sparse_coo_tensor(torch.cat(all_rows)[None], values, g.shape)
            continue
        g = coalesce_rows(g)
        rows, values = g._indices()[0], g._values()  # (n,), (n, *row_shape)
        size = torch.tensor([len(rows)], device=rows.device)
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        sizes = [int(s) for s in sizes]
        longest = max(sizes)
        pad = longest - len(rows)
        rows = torch.cat([rows, rows.new_zeros(pad)])
        values = torch.cat([values, values.new_zeros(pad, *values.shape[1:])])
        all_rows, all_values = _all_gather_rows(rows, values, world)
        rows = torch.cat([r[:n] for r, n in zip(all_rows, sizes)])
        values = torch.cat([v[:n] for v, n in zip(all_values, sizes)]) / world
        p.grad = coalesce_rows(torch.sparse_coo_tensor(rows[None], values, g.shape))


def _all_gather_rows(
    rows: torch.Tensor, values: torch.Tensor, world: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Every rank's row ids and rows, of the same shapes on every rank."""
    all_rows = [torch.empty_like(rows) for _ in range(world)]
    all_values = [torch.empty_like(values) for _ in range(world)]
    dist.all_gather(all_rows, rows)
    dist.all_gather(all_values, values)
    return all_rows, all_values
