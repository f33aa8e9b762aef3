"""Adagrad as the original trainer runs it, with its update in a few kernels per step.

``RowAdagrad`` is ``torch.optim.Adagrad`` (same arguments, same state, same checkpoints) with a
faster ``step`` for the common case (no weight decay, no ``maximize``): the dense parameters are
updated by torch's fused Adagrad kernel on the CPU (one pass per tensor instead of four
operations; docs/PERFORMANCE.md has the figures) and by its multi-tensor (``foreach``) Adagrad
on accelerators and on the accelerator path (``ELMO_LM_PATH``), and a sparse gradient (the
softmax rows) by three operations on its rows (add the squares, read the sums back, add the
scaled rows) instead of building three sparse tensors, or by one C pass over the rows on the
native path. The arithmetic is Adagrad's, ``sum += g * g; p -= lr * g / (sqrt(sum) + eps)``;
the fused kernel rounds the last step differently (results differ by about one float32 ulp).
"""

from __future__ import annotations

import torch
from torch.optim.adagrad import adagrad

from elmo_lm.cpu import kernels, path
from elmo_lm.cpu.path import may_read_on_host
from elmo_lm.training.gradients import coalesce_rows, padded_rows


class RowAdagrad(torch.optim.Adagrad):
    """``torch.optim.Adagrad`` whose step costs a few kernels (see the module's docstring);
    other settings (``weight_decay``, ``maximize``, ``differentiable``, ``fused``) take
    torch's own step."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if (
                group["weight_decay"]
                or group["maximize"]
                or group["differentiable"]
                or group.get("fused")
            ):
                super().step()
                return loss
        for group in self.param_groups:
            dense = [p for p in group["params"] if p.grad is not None and not p.grad.is_sparse]
            for on_cpu in (True, False):
                params = [p for p in dense if (p.device.type == "cpu") == on_cpu]
                if not params:
                    continue
                # On the CPU, torch's fused kernel (one pass per tensor; foreach runs tensor by
                # tensor there); on accelerators (and the accelerator path) foreach, whose step
                # counters stay on the CPU.
                has_complex = any(torch.is_complex(p) for p in params)
                fused = path.for_tensor(params[0]) != "accelerator" and not has_complex
                adagrad(
                    params,
                    [p.grad for p in params],
                    [self.state[p]["sum"] for p in params],
                    [self.state[p]["step"] for p in params],
                    fused=fused,
                    foreach=not fused,
                    lr=group["lr"],
                    weight_decay=0.0,
                    lr_decay=group["lr_decay"],
                    eps=group["eps"],
                    maximize=False,
                    has_complex=has_complex,
                )
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    self._sparse_step(p, group)
        return loss

    def _sparse_step(self, param: torch.Tensor, group: dict) -> None:
        """Adagrad on the rows of a sparse gradient (first dimension sparse, rows dense)."""
        state = self.state[param]
        state["step"] += 1  # a CPU tensor, as torch's Adagrad keeps it
        clr = group["lr"]
        if group["lr_decay"]:
            clr /= 1 + (float(state["step"]) - 1) * group["lr_decay"]
        sums = state["sum"]
        if may_read_on_host(param.grad):
            grad = coalesce_rows(param.grad)
            rows, values = grad._indices()[0], grad._values()  # distinct rows, (K, *row)
            if kernels.adagrad_rows_(rows, values, sums, param, clr, group["eps"]):
                return  # one C pass over the rows (kernels.c), rounded as below
        elif param.grad.is_coalesced():  # set_row_gradients' padded rows, summed already
            rows, values = param.grad._indices()[0], param.grad._values()
        else:  # distinct rows, then zero rows: index_add_ of their zero updates changes nothing
            # (not for the C update, which needs distinct rows: it updates them on threads)
            rows, values = padded_rows(param.grad)
        sums.index_add_(0, rows, values * values)
        std = sums.index_select(0, rows).sqrt_().add_(group["eps"])
        # (index_add_ with alpha= takes a path four times slower than scaling first)
        param.index_add_(0, rows, torch.div(values, std).mul_(-clr))
