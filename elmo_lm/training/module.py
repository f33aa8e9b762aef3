"""The LightningModule that trains a biLM as the original ELMo trainer did.

Training batches come from ``ElmoDataModule`` (see docs/CONTRACTS.md): the LSTM state is carried
from one window of a stream to the next (``stream_id``), cut at each window, and zeroed when a
batch says ``reset`` (an epoch's first) or the stream has none (a resume from a checkpoint
without it). Checkpoints hold every rank's carried states, so a resumed run goes on exactly as
the uninterrupted one. The loss is the mean of the forward and backward LMs' losses; as in the
original (``opt.compute_gradients(loss * unroll_steps)``), the gradient is that of ``loss *
unroll_steps``, so Adagrad's learning rate and the global-norm clip mean what they meant there.
One softmax (weights and biases) is shared by both directions; each draws its own negatives.
The other kinds the original trains (``elmo_lm.training.lm_kinds``): word inputs, whose softmax
may be their embedding (``share_embedding_softmax``), and a forward LM alone, whose loss is its
own mean loss.

Randomness (negatives, dropout, state resets) is drawn from the global generator, seeded at the
start of every step from (seed, rank, step): ranks draw differently, a run is reproducible, and a
resumed run draws what the uninterrupted one would have drawn.

Under DDP the softmax matrices are kept out of DDP's gradient reducer (their gradient is sparse,
which NCCL cannot all-reduce, and DDP's bucketing would make it dense anyway); their gradients are
all-gathered and averaged right after the backward pass, before mixed precision's unscale and
overflow check and before the global-norm clip, so every rank sees the same gradients, makes the
same skip-or-step decision and applies the same update. Held-out perplexity sums
log-likelihoods and token counts over all ranks before taking ``exp(-sum / count)``, so it is
exact whatever the number of ranks.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque

import lightning as L
import torch
import torch.distributed as dist

from elmo_lm.cpu.path import allow_tf32, may_read_on_host
from elmo_lm.data.vocabulary import Vocabulary
from elmo_lm.formats.checkpoint import load_checkpoint
from elmo_lm.formats.options import BiLMOptions
from elmo_lm.model.bilm import BiLM, bilm_state_detach
from elmo_lm.training.config import COMPILE_MODES
from elmo_lm.training.gradients import RowBufferGradients, all_reduce_mean_grads, clip_grad_norm
from elmo_lm.training.lm_kinds import (
    SOFTMAX_MODES,  # noqa: F401  (importers' name for them)
    as_dicts_and_lists,
    build_softmax,
    flatten,
    resolve_softmax,
    separate_parameter_names,
)
from elmo_lm.training.optim import RowAdagrad
from elmo_lm.training.perplexity import perplexities
from elmo_lm.training.randomness import reset_rows, seed_generators, step_seed

log = logging.getLogger(__name__)

# The batch's tensors a training window's loss reads (the rest are host values).
_WINDOW_KEYS = (
    "fwd_chars",
    "bwd_chars",
    "fwd_targets",
    "bwd_targets",
    "tokens",
    "token_index",
    "fwd_ids",
    "bwd_ids",
)
# The checkpoint's carried training LSTM states: {"world_size": W, "ranks": {rank: {stream_id:
# (h, c)}}}, CPU tensors (layers, 2, B, dim).
TRAIN_STATES_KEY = "elmo_lm_train_states"


class ElmoLM(L.LightningModule):
    """A biLM and its softmax, trained as the original ELMo trainer did.

    Every argument is a plain value, so a checkpoint rebuilds the module without any config:
    ``ElmoLM.from_checkpoint(path)``.

    Args:
        options: ``BiLMOptions.to_dict()`` of the run (``elmo_lm.training.config.run_options``), stored
            as given: ``n_negative_samples_batch`` is the number of negatives per step and
            direction of the sampled softmax, ``all_clip_norm_val`` the global norm gradients
            are clipped to, and ``n_tokens_vocab`` must be the vocabulary's size (0: not given).
        vocab: the vocabulary's tokens in id order (``<S>``, ``</S>``, ``<UNK>``, then by
            descending count); the softmax classes.
        lr: Adagrad learning rate.
        initial_accumulator_value: Adagrad's initial sum of squared gradients.
        softmax: ``auto`` (sampled when the vocabulary is larger than the options'
            ``n_negative_samples_batch``), ``sampled`` or ``full``. Validation always uses the
            full softmax.
        seed: seeds each step's random draws together with the rank and the step.
        reset_state_prob: chance that a row's carried LSTM state is zeroed before a training
            window, so that the model also learns to start from a zero state (as held-out text
            and stateless embeddings do); 0 never resets, as the original. At 0.02 (one reset
            per ~1,000 tokens of a row) the carried-state perplexity is unchanged and the
            zero-state one falls (docs/TRAINING_GUIDE.md).
        tokenizer: ``TokenizerSpec.to_dict()`` of the tokenizer that cut the training text (a
            prepared corpus's), so that text embedded later is cut alike; None: not recorded.
    """

    def __init__(
        self,
        options: dict,
        vocab: list[str],
        lr: float = 0.2,
        initial_accumulator_value: float = 1.0,
        softmax: str = "auto",
        seed: int = 0,
        reset_state_prob: float = 0.02,
        tokenizer: dict | None = None,
    ):
        super().__init__()
        vocab = [str(t) for t in vocab]
        # plain values: checkpoints load weights_only
        opts = BiLMOptions.from_dict(as_dicts_and_lists(options))
        if opts.n_tokens_vocab not in (0, len(vocab)):
            raise ValueError(
                f"options.n_tokens_vocab={opts.n_tokens_vocab}, but the vocabulary has "
                f"{len(vocab)} tokens"
            )
        opts.n_tokens_vocab = len(vocab)
        n_negative_samples = opts.n_negative_samples_batch
        if not 0.0 <= reset_state_prob <= 1.0:
            raise ValueError(f"module.reset_state_prob={reset_state_prob}: must lie in [0, 1]")
        sampled = resolve_softmax(softmax, len(vocab), n_negative_samples, opts.sample_softmax)
        opts.sample_softmax = sampled  # the options record the softmax trained with
        self.save_hyperparameters(
            {
                "options": opts.to_dict(),
                "vocab": vocab,
                "lr": float(lr),
                "initial_accumulator_value": float(initial_accumulator_value),
                "softmax": str(softmax),
                "seed": int(seed),
                "reset_state_prob": float(reset_state_prob),
                "tokenizer": dict(tokenizer) if tokenizer is not None else None,
            },
            logger=False,  # the token list is no TensorBoard hyperparameter: see on_fit_start
        )
        self.bilm = BiLM(opts, vocab=vocab if opts.word_inputs else None)
        self.softmax = build_softmax(opts, self.bilm, len(vocab), sampled)
        self.sampled = sampled
        # DDP leaves these to all_reduce_mean_grads (sparse gradients).
        self._ddp_params_and_buffers_to_ignore = separate_parameter_names(self)
        self._train_states: dict[int, object] = {}  # stream_id -> LSTM state
        self._restored_states: dict | None = None  # a checkpoint's, until on_train_start
        self._val_states: dict[int, object] = {}  # stream_id -> LSTM state of held-out streams
        self._val_sums = torch.zeros(
            4, dtype=torch.float64
        )  # nll fwd, count fwd, nll bwd, count bwd
        self._step_ends: deque[float] = deque(maxlen=21)  # perf_counter at the last steps' ends
        self._log_step = True  # whether this training step's metrics are logged
        self.compile_mode = "none"  # a run setting (set_compile), not a hyperparameter
        self._compiled = None  # the compiled window loss, made at the first step
        self._rows = RowBufferGradients(self.softmax)  # an accelerator's softmax gradient

    def set_compile(self, mode: str) -> None:
        """How a training window's loss (forward and loss; AOTAutograd compiles the backward
        with it) runs: ``none`` eager, ``default`` ``torch.compile(fullgraph=True)``,
        ``reduce-overhead`` the same captured as CUDA graphs. A run setting (``compile=``),
        not stored in checkpoints."""
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile={mode!r}: use one of {', '.join(COMPILE_MODES)}")
        self.compile_mode, self._compiled = mode, None

    progress_metrics = ("train/ppl", "train/sampled_ppl", "train/tokens_per_s")
    """What the run's progress bar shows of the training metrics (``callbacks.ProgressBar``)."""

    @property
    def logged_this_step(self) -> bool:
        """Whether this training step's metrics reached the logger (the progress bar reads
        them on those steps only: reading a device value waits for the device)."""
        return self._log_step

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> ElmoLM:
        """The trained module of a checkpoint, without any config (``load_checkpoint``'s
        one-line errors when it is missing or unreadable)."""
        checkpoint = load_checkpoint(path)
        module = cls(**checkpoint["hyper_parameters"])
        module.load_state_dict(checkpoint["state_dict"])
        return module.to(map_location)

    @property
    def options(self) -> BiLMOptions:
        return self.bilm.options

    @property
    def vocab(self) -> Vocabulary:
        return Vocabulary(self.hparams["vocab"])

    def softmax_parameters(self) -> list[torch.nn.Parameter]:
        """The softmax's parameters (a tied one's weight is the word embedding)."""
        return list(self.softmax.parameters())

    def separate_parameters(self) -> list[torch.nn.Parameter]:
        """Those DDP leaves alone (``separate_parameter_names``): softmax, word embedding."""
        names = set(self._ddp_params_and_buffers_to_ignore)
        return [p for n, p in self.named_parameters() if n in names]

    def configure_optimizers(self):
        # Sparse invariants go unchecked for the whole run: elmo_lm.training.run.process_settings.
        return RowAdagrad(
            self.parameters(),
            lr=self.hparams["lr"],
            initial_accumulator_value=self.hparams["initial_accumulator_value"],
        )

    def on_fit_start(self) -> None:
        allow_tf32(self.device)
        if self._distributed():
            # Not synchronised by DDP at wrap time: start every rank from rank 0's softmax.
            for p in self.separate_parameters():
                dist.broadcast(p.data, src=0)
        if self.logger is not None:
            hp = {k: v for k, v in self.hparams.items() if k not in ("vocab", "options")}
            hp.update(vocab_size=len(self.hparams["vocab"]), sampled_softmax=self.sampled)
            hp.update(world_size=self.trainer.world_size)  # tokens per step (plots.py)
            hp.update({f"options/{k}": v for k, v in flatten(self.hparams["options"]).items()})
            self.logger.log_hyperparams(hp)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The carried training states, so that a resumed run goes on exactly where this one is.
        # Lightning writes rank 0's checkpoint only (this hook runs on every rank), so all
        # ranks' states are gathered into it.
        mine = {
            s: tuple(t.cpu() for t in st) for s, st in self._train_states.items() if st is not None
        }
        ranks = [mine]
        if self._distributed():
            ranks = [None] * dist.get_world_size()
            dist.all_gather_object(ranks, mine)
        checkpoint[TRAIN_STATES_KEY] = {"world_size": len(ranks), "ranks": dict(enumerate(ranks))}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Taken up in on_train_start, where the rank and the device are known. A checkpoint
        # saved before the states were resumes from zero states (empty).
        self._restored_states = checkpoint.get(TRAIN_STATES_KEY, {})

    def on_train_start(self) -> None:
        saved, self._restored_states = self._restored_states, None
        if saved is None:  # not resumed: keep what this module carries
            return
        states = {}
        if saved and saved["world_size"] == self.trainer.world_size:
            mine = saved["ranks"].get(self.global_rank, {})
            states = {s: tuple(t.to(self.device) for t in st) for s, st in mine.items()}
        elif saved:
            log.info(
                "the checkpoint's LSTM states are of %d ranks, not %d: resuming from zero states",
                saved["world_size"],
                self.trainer.world_size,
            )
        self._train_states = states

    def lm_losses(self, batch: dict, state=None):
        """Summed losses and target counts of both directions over one batch.

        Returns:
            ``(nll_fwd, n_fwd, nll_bwd, n_bwd, new_state)``; the losses are sampled when training
            with the sampled softmax, exact otherwise; a forward LM alone's backward two are 0.
        """
        distinct = batch.get("tokens"), batch.get("token_index")  # training batches (packing.py)
        words = (batch["fwd_ids"], batch["bwd_ids"]) if self.options.word_inputs else None
        fwd, bwd, new_state = self.bilm.lm_forward(
            batch.get("fwd_chars"), batch.get("bwd_chars"), state, *distinct, word_ids=words
        )
        # fwd, bwd: (B, T, P); each direction draws its own negatives
        nll_fwd, n_fwd, nll_bwd, n_bwd = self.softmax.forward_pair(
            fwd, batch["fwd_targets"], bwd, batch["bwd_targets"]
        )
        return nll_fwd, n_fwd, nll_bwd, n_bwd, new_state

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        seed_generators(
            step_seed(self.hparams["seed"], self.global_rank, self.global_step), self.device
        )
        self._log_step = self._logs_this_step(batch_idx)

    def _logs_this_step(self, batch_idx: int) -> bool:
        """Whether the training metrics of this step reach the logger: Lightning writes every
        ``log_every_n_steps``-th step's, and we also log the last step of an epoch or run.
        Other steps skip ``self.log``, whose cost is a visible share of a small model's step
        (bench/bench_speed.py times steps through train.py; figures in docs/PERFORMANCE.md)."""
        trainer = self.trainer
        connector = getattr(trainer, "_logger_connector", None)
        if connector is None:
            return True
        last = batch_idx + 1 >= trainer.num_training_batches or (
            trainer.max_steps > 0 and self.global_step + 1 >= trainer.max_steps
        )
        return bool(connector.should_update_logs) or last

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        stream = int(batch["stream_id"])
        state = None if batch["reset"] else self._train_states.get(stream)
        if state is not None and state[0].shape[2] != batch["fwd_targets"].shape[0]:
            state = None  # restored from a run of another batch size
        if state is not None and self.hparams["reset_state_prob"] > 0:
            state = reset_rows(state, self.hparams["reset_state_prob"])
        targets = batch["fwd_targets"]
        if self.sampled and not may_read_on_host(targets):  # an accelerator's fixed shapes
            self._rows.prepare(targets.numel(), targets, self._distributed())
        window = {k: batch[k] for k in _WINDOW_KEYS if k in batch}
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        loss, new_state = self._window_loss_fn(targets)(window, state)
        new_state = bilm_state_detach(new_state)
        if self.compile_mode == "reduce-overhead":  # a CUDA graph's outputs are its to rewrite
            new_state, loss = tuple(t.clone() for t in new_state), loss.clone()
        self._train_states[stream] = new_state
        if self._log_step:
            name = "train/sampled_ppl" if self.sampled else "train/ppl"
            self.log("train/loss", loss.detach(), on_step=True)
            self.log(name, torch.exp(loss.detach()), on_step=True)
        # The original's gradient: that of loss * unroll_steps (bilm/training.py).
        return loss * targets.shape[1]

    def window_loss(self, window: dict, state=None):
        """A training window's ``lm_loss`` and the LSTM state it ends in: what ``compile=``
        compiles, one graph (``torch._dynamo.explain`` finds no break)."""
        nll_fwd, n_fwd, nll_bwd, n_bwd, new_state = self.lm_losses(window, state)
        directions = self.options.n_directions
        return lm_loss(nll_fwd, n_fwd, nll_bwd, n_bwd, directions), new_state

    def _window_loss_fn(self, like: torch.Tensor):
        """``window_loss``, compiled as ``compile_mode`` says: whole on an accelerator (one
        graph, no break); on the CPU's paths, whose shapes follow the data (host reads), in
        the pieces between them."""
        if self.compile_mode == "none":
            return self.window_loss
        if self._compiled is None:
            mode = None if self.compile_mode == "default" else self.compile_mode
            whole = not may_read_on_host(like)
            self._compiled = torch.compile(self.window_loss, fullgraph=whole, mode=mode)
        return self._compiled

    def on_after_backward(self) -> None:
        # Before the precision plugin unscales and looks for inf/NaN: every rank then holds the
        # same softmax gradients (and DDP's averaged dense ones), so all decide alike.
        distributed = self._distributed()
        gathered = self._rows.finish(distributed)  # the softmax's (and a tied embedding's)
        if distributed:
            done = {id(p) for p in self.softmax_parameters()} if gathered else set()
            all_reduce_mean_grads(p for p in self.separate_parameters() if id(p) not in done)

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):
        # Our own global-norm clip (sparse softmax gradients included); the Trainer's
        # gradient_clip_val, when set, overrides the options' all_clip_norm_val.
        max_norm = gradient_clip_val or self.options.all_clip_norm_val
        norm = clip_grad_norm(self.parameters(), max_norm)
        if self._log_step:
            self.log("train/grad_norm", norm, on_step=True)

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        # Tokens/s over the last few steps (data loading included), for all ranks together.
        self._step_ends.append(time.perf_counter())
        if not self._log_step:
            return
        if len(self._step_ends) > 1:
            tokens = (
                batch["fwd_targets"].numel() * self.trainer.world_size * (len(self._step_ends) - 1)
            )
            rate = tokens / (self._step_ends[-1] - self._step_ends[0])
            # Host values as host tensors: Lightning would copy a float to the device.
            self.log("train/tokens_per_s", torch.tensor(rate), on_step=True)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]
        self.log("train/lr", torch.tensor(float(lr)), on_step=True)

    def on_train_epoch_start(self) -> None:
        self._step_ends.clear()

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(4, dtype=torch.float64, device=self.device)
        self._val_states = {}

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._val_sums += self.score_stream_batch(batch, self._val_states)

    def score_stream_batch(self, batch: dict, states: dict) -> torch.Tensor:
        """``score_batch`` of a held-out stream batch (``HeldOutStreams``), carrying each
        stream's state in ``states`` (stream_id -> state) from one batch to the next."""
        stream = int(batch["stream_id"])
        state = None if batch["reset"] else states.get(stream)
        sums, states[stream] = self.score_batch(batch, state)
        return sums

    def score_batch(self, batch: dict, state=None) -> tuple[torch.Tensor, object]:
        """(nll fwd, count fwd, nll bwd, count bwd) float64 of a held-out batch from ``state``
        (None: zeros), and the state it ends in; exact when in eval mode (full softmax)."""
        nll_fwd, n_fwd, nll_bwd, n_bwd, new_state = self.lm_losses(batch, state)
        sums = torch.stack([nll_fwd.double(), n_fwd.double(), nll_bwd.double(), n_bwd.double()])
        return sums, bilm_state_detach(new_state)

    def on_validation_epoch_end(self) -> None:
        sums = self._val_sums
        if self._distributed():
            sums = sums.clone()
            dist.all_reduce(sums)
        ppl = perplexities(sums)
        for key, value in ppl.items():
            # Equal on every rank already (summed above); sync_dist only averages equal values.
            self.log(f"val/{key}", value, prog_bar=key == "ppl", sync_dist=True)
        self.log("val/tokens", sums[1].float(), sync_dist=True)

    def _distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def lm_loss(
    nll_fwd: torch.Tensor,
    n_fwd: torch.Tensor,
    nll_bwd: torch.Tensor,
    n_bwd: torch.Tensor,
    directions: int = 2,
) -> torch.Tensor:
    """The loss of a batch, as the original's ``0.5 * (loss_fwd + loss_bwd)``: the mean of the
    forward and the backward LM's mean losses, from their summed losses and target counts (a
    direction without targets adds 0); a forward LM alone (``directions`` 1): its mean loss."""
    if directions == 1:
        return nll_fwd / n_fwd.clamp(min=1)
    return 0.5 * (nll_fwd / n_fwd.clamp(min=1) + nll_bwd / n_bwd.clamp(min=1))
