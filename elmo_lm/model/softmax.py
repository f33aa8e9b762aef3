"""The output softmax of one LM direction: sampled (log-uniform negatives) or full.

Training on a large vocabulary uses a sampled softmax as ``tf.nn.sampled_softmax_loss`` does in
the original ELMo trainer: ``n_negative_samples`` distinct classes drawn from the log-uniform
(Zipfian) distribution over the vocabulary ids, which assumes ids ordered by descending count;
each logit is corrected by the log of its class's expected count, and a sampled class that
equals the row's target ("accidental hit") is removed from that row. Only the rows of the targets
and of the sampled classes are read, and their gradient is sparse, so a step costs the same
whatever the size of the vocabulary (with ``elmo_lm.training.optim.RowAdagrad`` or ``torch.optim.Adagrad``,
which update sparse rows).

Held-out perplexity always uses the full softmax, computed in chunks of rows so that a large
vocabulary does not need a (tokens, vocabulary) matrix at once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from elmo_lm.cpu import kernels, matmul
from elmo_lm.cpu.path import may_read_on_host
from elmo_lm.model.sampler import (
    draws_needed,
    expected_counts,
    log_uniform_candidates,
    log_uniform_probs,
)


@torch.compiler.disable
def sparse_rows(
    ids: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax rows and biases of ``ids``, (K,) -> (K, P), (K,), whose gradients are sparse.

    Left out of ``torch.compile``'s graphs (which cannot make sparse gradients): a compiled step
    runs the lookups eagerly and still updates only the rows it touched.
    """
    return F.embedding(ids, weight, sparse=True), F.embedding(ids, bias, sparse=True).squeeze(1)


class _BufferedRows(torch.autograd.Function):
    """The rows and biases of ``ids`` (K,) -> (K, P), (K,), whose gradient goes to ``sink``
    (K, P + 1), weight columns then the bias, one entry per id: a dense buffer of a fixed
    shape, where ``sparse_rows`` makes a sparse tensor (which torch.compile cannot trace and a
    CUDA graph cannot hold). The weights get no gradient from here: ``Softmax.row_gradient``
    hands the sink's to the optimizer."""

    @staticmethod
    def forward(ctx, ids, weight, bias, sink):
        return weight.index_select(0, ids), bias.index_select(0, ids).squeeze(1)

    @staticmethod
    def backward(ctx, d_rows, d_bias):
        return None, None, None, torch.cat([d_rows, d_bias[:, None].to(d_rows.dtype)], 1)


# Columns past the sampled classes: the target's logit, then -inf columns up to a multiple of 128
# (aligned rows, and product shapes oneDNN reuses; matmul.SHAPE_STEP).
COLUMN_STEP = 128


def _extra_columns(n_sampled: int) -> int:
    """The columns after ``n_sampled``: up to a multiple of ``COLUMN_STEP``, at least two (the
    target's, and a -inf one where a row without an accidental hit puts its -inf)."""
    extra = COLUMN_STEP - n_sampled % COLUMN_STEP
    return extra + COLUMN_STEP if extra < 2 else extra


def _softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """``torch.softmax(logits, 1)``; on the native path in place by ``kernels.c`` (one pass per
    row while it is in cache, rows over torch's threads, faster than torch's kernel on the
    sampled softmax's (N, S + 128) logits: docs/PERFORMANCE.md)."""
    probs = kernels.softmax_rows_(logits)
    return torch.softmax(logits, 1) if probs is None else probs


class _SampledNLL(torch.autograd.Function):
    """-log softmax([sampled, true])[true] per row, from the true logits and the sampled classes'
    rows, with a hand-written backward.

    One product makes the (N, S) logits, with extra columns: the target's logit (a zero weight
    row whose column is then overwritten) and -inf columns that align the rows; accidental hits
    get -inf by one scatter of one column per row, with no (N, S) mask. ``_softmax_rows`` then
    makes the probabilities in place (``kernels.c``'s one pass over each row, max, exp, sum and
    scale while the row is in cache; ``torch.softmax`` off the native path), which are kept for
    the backward pass: the gradient of the
    logits is ``(p - onehot(true)) * grad``, read in two matmuls and nothing else. The softmax
    arithmetic runs in float32 whatever the matmul's precision (autocast). A row's loss is
    ``-log p(true)``, exact down to p(true) = 1e-38 (87 nats), where it stops: its gradient
    stays exact.
    """

    @staticmethod
    def forward(ctx, true_logits, inputs, sampled_w, sampled_b, hit_cols):
        s = sampled_w.shape[0]
        extra = _extra_columns(s)  # >= 2: the target's column, then -inf ones
        weight = torch.cat([sampled_w, sampled_w.new_zeros(extra, sampled_w.shape[1])])
        bias = torch.cat(
            [sampled_b, sampled_b.new_zeros(1), sampled_b.new_full((extra - 1,), -math.inf)]
        )
        logits = matmul.addmm(bias, inputs, weight.t()).float()  # (N, S + extra)
        logits[:, s] = true_logits.float()
        if hit_cols is not None:  # (N,) the target's column among the sampled, or s + 1
            logits.scatter_(1, hit_cols[:, None], -math.inf)  # column s + 1 is -inf already
        probs = _softmax_rows(logits)
        del logits
        p_true = probs[:, s].clamp(min=torch.finfo(torch.float32).tiny)
        ctx.save_for_backward(probs, inputs, weight)
        ctx.s = s
        return -p_true.log()

    @staticmethod
    def backward(ctx, grad):
        probs, inputs, weight = ctx.saved_tensors
        s = ctx.s
        grad = grad.float()  # (N,): d loss / d logits = (probs - onehot(true)) * grad per row
        d_true = grad * (probs[:, s] - 1.0)  # (N,)
        # The target's column and the -inf columns have zero weight rows: they add nothing.
        d_inputs = matmul.mm(probs, weight.float()).mul_(grad[:, None]).to(inputs.dtype)  # (N, P)
        scaled = torch.cat([inputs.float() * grad[:, None], grad[:, None]], 1)  # (N, P + 1)
        d_wb = matmul.mm(probs.t(), scaled)[:s]  # (S, P + 1): weight and bias gradients at once
        d_w, d_b = d_wb[:, :-1].to(weight.dtype), d_wb[:, -1]
        return d_true, d_inputs, d_w, d_b, None


def sampled_softmax_nll(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    sampled: torch.Tensor,
    log_true_expected: torch.Tensor | None,
    log_sampled_expected: torch.Tensor | None,
    remove_accidental_hits: bool = True,
    rows: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per-token loss of the sampled softmax (``tf.nn.sampled_softmax_loss``).

    Args:
        inputs: (N, P) LM outputs.
        targets: (N,) class ids.
        weight: (V, P) softmax weights; only the target and sampled rows are read, through a
            sparse embedding lookup, so their gradient is sparse.
        bias: (V, 1) softmax biases (a column, so that its lookup is sparse too).
        sampled: (S,) distinct sampled class ids.
        log_true_expected: (N,) log expected count of each target, subtracted from its logit;
            None for no correction.
        log_sampled_expected: (S,) the same for the sampled classes.
        remove_accidental_hits: a sampled class equal to the row's target gets no logit.
        rows: the rows and biases of ``cat([targets, sampled])``, already looked up with
            ``sparse_rows`` (as ``Softmax.forward_pair`` does for both directions at once); None
            looks them up.

    Returns:
        (N,) negative log-likelihood of each target among itself and the sampled classes.
    """
    sizes = [targets.shape[0], sampled.shape[0]]
    if rows is None:
        rows = sparse_rows(torch.cat([targets, sampled]), weight, bias)  # (N + S, P), (N + S,)
    true_w, sampled_w = rows[0].split(sizes)
    true_b, sampled_b = rows[1].split(sizes)
    true_logits = (inputs * true_w).sum(-1) + true_b  # (N,)
    if log_true_expected is not None:
        true_logits = true_logits - log_true_expected
    if log_sampled_expected is not None:
        sampled_b = sampled_b - log_sampled_expected
    hit_cols = None
    if remove_accidental_hits:
        # Each target's column among the sampled, or the first -inf column past them (s + 1)
        # where it was not sampled, read from a table over the class ids: one fill of 8 bytes
        # per class, cheaper than a sort of the sampled ids even at 800,000 classes
        # (docs/PERFORMANCE.md), and the scatter of -inf needs nothing else.
        s = len(sampled)
        column = torch.full((weight.shape[0],), s + 1, dtype=torch.long, device=targets.device)
        column[sampled] = torch.arange(s, device=targets.device)
        hit_cols = column[targets]  # (N,)
    return _SampledNLL.apply(true_logits, inputs, sampled_w, sampled_b, hit_cols)


def full_softmax_nll(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    max_elements: int = 2**24,
) -> torch.Tensor:
    """Per-token loss of the full softmax, (N, P) and (N,) -> (N,).

    Without autograd, rows go through in chunks of at most ``max_elements`` logits, so memory
    stays bounded for any vocabulary; with autograd, all at once.
    """
    b = bias.squeeze(1)
    if torch.is_grad_enabled():
        return F.cross_entropy(F.linear(inputs, weight, b), targets, reduction="none")
    chunk = max(1, max_elements // weight.shape[0])
    return (
        torch.cat(
            [
                F.cross_entropy(F.linear(x, weight, b), t, reduction="none")
                for x, t in zip(inputs.split(chunk), targets.split(chunk))
            ]
        )
        if len(targets)
        else inputs.new_zeros(0)
    )


def logit_budget(like: torch.Tensor) -> int:
    """Logits of one chunk of the full softmax without autograd: on a GPU, as many as a
    sixteenth of its free memory holds (each logit is read a few times: the product, the
    log-softmax, the pick), up to 2**28, so that the softmax matrix is read once per several
    hundred rows, not once per few; on the CPU 2**24 (64 MB), which stays near its caches."""
    if like.device.type != "cuda":
        return 2**24
    free, _ = torch.cuda.mem_get_info(like.device)
    return int(max(2**22, min(2**28, free // (16 * like.element_size()))))


class Softmax(nn.Module):
    """The softmax of an LM over a vocabulary (shared by both directions).

    Args:
        n_classes: V, the vocabulary size (ids in descending count order for sampling).
        dim: P, the LM output size.
        n_negative_samples: S, negatives per training step when ``sampled``.
        sampled: train with the sampled softmax (needs ``S < V``); else the full softmax.
        weight: the (V, P) weights of a word embedding this softmax is tied to
            (``share_embedding_softmax``): its lookups then go through ``input_rows``, so
            that inputs and outputs reach one gradient; None: weights of its own.
        n_directions: 2, or 1 for a forward LM alone (rows a step looks up).
    """

    def __init__(
        self,
        n_classes: int,
        dim: int,
        n_negative_samples: int = 8192,
        sampled: bool = True,
        weight: nn.Parameter | None = None,
        n_directions: int = 2,
    ):
        super().__init__()
        if sampled and not 0 < n_negative_samples < n_classes:
            raise ValueError(
                f"a sampled softmax needs 0 < n_negative_samples ({n_negative_samples}) < "
                f"vocabulary size ({n_classes}); use fewer negatives or the full softmax"
            )
        self.n_classes = n_classes
        self.n_negative_samples = n_negative_samples
        self.sampled = sampled
        self.n_directions = n_directions
        self.tied = weight is not None
        # The original trainer's initialisation: N(0, 1 / sqrt(P)) weights, zero biases.
        if weight is None:
            weight = nn.Parameter(torch.randn(n_classes, dim) * dim**-0.5)  # (V, P)
        self.weight = weight
        self.bias = nn.Parameter(torch.zeros(n_classes, 1))  # (V, 1)
        # Worked out on the host here, once: a step only reads the number.
        self.num_draws = draws_needed(n_negative_samples, n_classes) if sampled else 0
        # Fixed-shape row buffers of the accelerator's step (use_row_buffers): the ids looked
        # up, and a leaf whose gradient receives their rows' gradients.
        self.row_ids: torch.Tensor | None = None
        self.row_grads: torch.Tensor | None = None
        # A tied softmax's second pair: the input embedding's lookups (input_rows).
        self.input_ids: torch.Tensor | None = None
        self.input_grads: torch.Tensor | None = None

    def row_count(self, n_targets: int) -> int:
        """Rows a training step of ``forward_pair`` looks up: each direction's targets and
        negatives."""
        return self.n_directions * (n_targets + self.n_negative_samples)

    def use_row_buffers(self, n_targets: int, like: torch.Tensor) -> None:
        """Makes the sampled softmax's gradient of the next ``forward_pair`` (``n_targets`` per
        direction) one dense buffer of a fixed shape instead of a sparse tensor: ``row_ids``
        (K,) and ``row_grads.grad`` (K, P + 1), read by ``row_gradient`` after the backward.
        The buffers stay from step to step (a CUDA graph needs their addresses to stay); their
        gradient is cleared here."""
        k, width = self.row_count(n_targets), self.weight.shape[1] + 1
        if (
            self.row_grads is None
            or self.row_grads.shape != (k, width)
            or (self.row_grads.device != like.device)
        ):
            self.row_ids = torch.zeros(k, dtype=torch.long, device=like.device)
            self.row_grads = torch.zeros(
                k, width, dtype=self.weight.dtype, device=like.device, requires_grad=True
            )
        self.row_grads.grad = None
        if self.tied:  # the inputs' rows: one per input position of each direction
            k = self.n_directions * n_targets
            if (
                self.input_grads is None
                or self.input_grads.shape != (k, width)
                or (self.input_grads.device != like.device)
            ):
                self.input_ids = torch.zeros(k, dtype=torch.long, device=like.device)
                self.input_grads = torch.zeros(
                    k, width, dtype=self.weight.dtype, device=like.device, requires_grad=True
                )
            self.input_grads.grad = None

    def input_rows(self, ids: torch.Tensor) -> torch.Tensor:
        """A tied softmax's rows for the input embedding, (N,) -> (N, P): through the input
        row buffer where the step uses buffers (their gradient joins the softmax's in
        ``row_gradient``), else sparse rows on the CPU, an ``index_select`` on an accelerator."""
        sink = self.input_grads
        if self.training and sink is not None and sink.grad is None and sink.shape[0] == len(ids):
            self.input_ids.copy_(ids)  # in place: the buffer keeps its address
            return _BufferedRows.apply(ids, self.weight, self.bias, sink)[0]
        if may_read_on_host(ids):
            return sparse_rows(ids, self.weight, self.bias)[0]
        return torch.index_select(self.weight, 0, ids)

    def row_gradient(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """After a backward through the row buffers: the ids (K,) and their gradient rows
        (K, P + 1), weight columns then bias, one entry per looked-up id (repeats not summed);
        None when the step did not use them."""
        if self.row_grads is None or self.row_grads.grad is None:
            return None
        if self.input_grads is not None and self.input_grads.grad is not None:  # tied: both
            ids = torch.cat([self.row_ids, self.input_ids])
            return ids, torch.cat([self.row_grads.grad, self.input_grads.grad])
        return self.row_ids, self.row_grads.grad

    def forward(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss over the targets that are not -1, and their number.

        Args:
            inputs: (..., P) LM outputs.
            targets: (...) next-token ids, -1 where there is none.

        Returns:
            The summed negative log-likelihood (sampled in training mode when ``sampled``, else
            exact) and the count of targets, a 0-dim long tensor. In training mode every
            position is computed and those without a target are zeroed, so that the shapes do
            not depend on the targets (no host synchronisation).
        """
        keep = targets >= 0
        count = keep.sum()
        if self.training:
            x, t = inputs.reshape(-1, inputs.shape[-1]), targets.reshape(-1)  # (N, P), (N,)
            if not self.sampled:
                b = self.bias.squeeze(1)
                nll = F.cross_entropy(
                    F.linear(x, self.weight, b), t, ignore_index=-1, reduction="sum"
                )
                return nll, count
            nll = self.sampled_nll(x, t.clamp(min=0))  # (N,)
            return (nll * keep.reshape(-1).to(nll.dtype)).sum(), count
        if not may_read_on_host(inputs):  # every position, those without a target zeroed
            x, t = inputs.reshape(-1, inputs.shape[-1]), targets.reshape(-1)
            nll = full_softmax_nll(x, t.clamp(min=0), self.weight, self.bias, logit_budget(x))
            return (nll * keep.reshape(-1).to(nll.dtype)).sum(), count
        x, t = inputs[keep], targets[keep]  # (N, P), (N,)
        return full_softmax_nll(x, t, self.weight, self.bias, logit_budget(x)).sum(), count

    def forward_pair(
        self,
        fwd_inputs: torch.Tensor,
        fwd_targets: torch.Tensor,
        bwd_inputs: torch.Tensor | None,
        bwd_targets: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``forward`` of the forward and the backward LM: ``(nll_fwd, n_fwd, nll_bwd, n_bwd)``;
        without backward inputs (a forward LM alone) its two are zeros.

        Training with the sampled softmax, each direction draws its own negatives (the forward
        LM first, as two ``forward`` calls would) and the rows of both are looked up at once, so
        that the weights get one sparse gradient, not autograd's sum of two (a cost every step).
        """
        directions = [(fwd_inputs, fwd_targets)]
        if bwd_inputs is not None:
            directions.append((bwd_inputs, bwd_targets))
        if not (self.training and self.sampled):
            out = [v for inputs, targets in directions for v in self(inputs, targets)]
            return tuple(out + [torch.zeros_like(v) for v in out] * (2 - len(directions)))
        pieces = []  # per direction: inputs (N, P), targets (N,) clamped, kept (N,), negatives
        for inputs, targets in directions:
            keep = targets.reshape(-1) >= 0
            t = targets.reshape(-1).clamp(min=0)
            x = inputs.reshape(-1, inputs.shape[-1])
            pieces.append((x, t, keep, *self.draw_negatives(t, x.dtype)))
        ids = torch.cat([i for _, t, _, sampled, _ in pieces for i in (t, sampled)])
        sizes = [len(t) + len(sampled) for _, t, _, sampled, _ in pieces]
        sink = self.row_grads
        if sink is not None and sink.grad is None and sink.shape[0] == ids.shape[0]:
            self.row_ids.copy_(ids)  # in place: the buffer keeps its address
            rows, biases = _BufferedRows.apply(ids, self.weight, self.bias, sink)
        else:
            rows, biases = sparse_rows(ids, self.weight, self.bias)
        out = []
        for (x, t, keep, sampled, log_q), r, b in zip(
            pieces, rows.split(sizes), biases.split(sizes)
        ):
            nll = sampled_softmax_nll(x, t, self.weight, self.bias, sampled, *log_q, rows=(r, b))
            out += [(nll * keep.to(nll.dtype)).sum(), keep.sum()]
        return tuple(out + [torch.zeros_like(v) for v in out] * (2 - len(directions)))

    def draw_negatives(
        self, targets: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Freshly drawn negatives (S,) and the log expected counts of ``targets`` (N,) and of
        the negatives (S,), in ``dtype``."""
        sampled, num_tries = log_uniform_candidates(
            self.n_negative_samples,
            self.n_classes,
            device=targets.device,
            num_draws=self.num_draws or None,
        )
        ids = torch.cat([targets, sampled])  # one pass of the elementwise work for both
        probs = log_uniform_probs(ids, self.n_classes)
        log_q = expected_counts(probs, num_tries, self.n_negative_samples).log().to(dtype)
        return sampled, list(log_q.split([len(targets), len(sampled)]))

    def sampled_nll(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(N, P), (N,) -> (N,) sampled-softmax losses with freshly drawn negatives."""
        sampled, log_q = self.draw_negatives(targets, inputs.dtype)
        return sampled_softmax_nll(inputs, targets, self.weight, self.bias, sampled, *log_q)
