"""Training step of the published original ELMo on a GPU, and its structure measured on the CPU.

Usage: python bench/bench_gpu.py --simulate          # CPU only: the step's structural figures
       python bench/bench_gpu.py [--check]           # on a GPU: precisions x compile modes
       torchrun --nproc-per-node N bench/bench_gpu.py --ddp
       python bench/bench_gpu.py --loader [--workers 1 2 3 4]

The shape is ``conf/model/original.yaml`` with an 800,000-word vocabulary, 8192 negatives and
batches of 128 x 20 synthetic Zipf tokens (``elmo_lm.training.synthetic.original_shape_step``).

``--simulate`` runs the accelerator path's step with module and batch on ``meta`` under
``StepAudit``: host reads (host_syncs), copies between devices, kernel-like operations per eager
step, FLOPs (FlopCounterMode) and the peak of live storages (float32, Adagrad). The CPU path's
FLOPs (the ``torch`` path: the same data-dependent shapes as the native one, in torch operations
FlopCounterMode sees) are measured on real CPU tensors at ``--cpu_batch`` x 20 and scaled by
tokens to the full batch; the ratio of both paths at that small batch is printed too.
Graph breaks: torch._dynamo.explain of the step's loss (forward + loss).

On a GPU, for each precision (fp32, tf32, bf16 autocast) and compile mode (none, default,
reduce-overhead of the loss + backward): median step time, tokens/s, per-phase CUDA-event times,
CUDA kernels per step (torch.profiler), host syncs (``set_sync_debug_mode("warn")``), peak
memory, MFU against the precision's peak (``PEAK_TFLOPS``). ``--check``: a step on the GPU
against the CPU path on the same batch and weights (eval mode: no dropout, the full softmax,
so that no random draw differs between the devices); exits 1 when off. The last line printed is
one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
from common import table  # noqa: E402

from elmo_lm.cpu import path  # noqa: E402
from elmo_lm.training import audit, synthetic  # noqa: E402
from elmo_lm.training.audit import TrainStep  # noqa: E402

# Dense peak TFLOPS by precision, from the vendors' data sheets (SXM parts unless named).
PEAK_TFLOPS = {
    "H200": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100": {"fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
}
PRECISIONS = ("fp32", "tf32", "bf16")
COMPILE_MODES = ("none", "default", "reduce-overhead")
CHECK_RTOL = {"loss": 1e-4, "grad": 1e-3, "param": 1e-4}  # relative L2 errors, fp32 on both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulate", action="store_true", help="CPU only: structural figures")
    parser.add_argument("--check", action="store_true", help="GPU step against the CPU path")
    parser.add_argument("--ddp", action="store_true", help="under torchrun: gradient averaging")
    parser.add_argument("--loader", action="store_true", help="tokens/s of the data loader")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--loader_batches", type=int, default=40)
    parser.add_argument("--vocab", type=int, default=800_000)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--unroll_steps", type=int, default=20)
    parser.add_argument("--negatives", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cpu_batch", type=int, default=4, help="--simulate's CPU-path batch")
    parser.add_argument("--check_vocab", type=int, default=50_000)
    parser.add_argument("--check_batch", type=int, default=16)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    parser.add_argument("--compile_modes", nargs="+", default=list(COMPILE_MODES))
    args = parser.parse_args()
    result: dict = {}
    ok = True
    if args.loader:
        result["loader"] = loader(args)
    if args.simulate:
        result["simulate"] = simulate(args)
    if args.check or args.ddp or not (args.loader or args.simulate):
        if not torch.cuda.is_available():
            raise SystemExit("no GPU here: use --simulate or --loader")
        if args.check:
            result["check"] = check(args)
            ok = result["check"]["ok"]
        result["gpu"] = gpu(args)
    print(json.dumps(result))
    if not ok:
        sys.exit(1)


def _timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"{label}: {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    return out


def simulate(args) -> dict:
    vocab = _timed("vocabulary", lambda: synthetic.synthetic_vocab(args.vocab))
    shape = dict(unroll_steps=args.unroll_steps, n_negative_samples=args.negatives)
    step = _timed(
        "model on meta",
        lambda: synthetic.original_shape_step(batch_size=args.batch_size, vocab=vocab, **shape),
    )
    peak = audit.estimate_peak_memory(step, step.resident(), granularity=512)  # no grads yet
    recorder = audit.StepAudit("meta", allowed=step.host_counters(), stacks=True)
    with recorder:
        step()
    counts = recorder.counts()
    flops = audit.executed_flops(step)
    # The CPU path at a small batch on real tensors, and the accelerator path at the same batch.
    small = _timed(
        "model on the CPU",
        lambda: synthetic.original_shape_step(
            batch_size=args.cpu_batch, vocab=vocab, device="cpu", path_name="torch", **shape
        ),
    )
    cpu_small = _timed("CPU-path step", lambda: audit.executed_flops(small))
    small.path = "accelerator"
    small.module.to("meta")
    small.optimizer = small.module.configure_optimizers()
    small.batch = {k: v.to("meta") for k, v in small.batch.items()}
    accel_small = audit.executed_flops(small)
    small = None  # the CPU model (3 GB) goes
    breaks = _timed("graph breaks", lambda: graph_breaks(step))
    figures = {
        "host_syncs": counts["host_read"],
        "device_copies": counts["device_copy"],
        "allowed_host_reads": counts["allowed_read"],
        "kernel_launches": counts["kernel"],
        "host_ops": counts["host"],
        "graph_breaks": breaks.get("graph_breaks"),
        "graphs": breaks.get("graphs"),
        "executed_gflop": flops / 1e9,
        "cpu_path_gflop": cpu_small * args.batch_size / args.cpu_batch / 1e9,
        "cpu_over_accelerator_at_small_batch": cpu_small / accel_small,
        "peak_memory_gb": peak / 1e9,
        "tokens": args.batch_size * args.unroll_steps,
    }
    rows = [
        {"figure": k, "value": f"{v:.4g}" if isinstance(v, float) else str(v)}
        for k, v in figures.items()
    ]
    print(table(rows))
    print(
        f"(cpu_path_gflop: the torch CPU path at {args.cpu_batch} x {args.unroll_steps} on real "
        f"tensors, scaled by tokens; graph breaks: {breaks.get('how')})"
    )
    for kind in ("host_read", "device_copy"):
        for op in getattr(recorder, "host_reads" if kind == "host_read" else "device_copies")[:3]:
            print(f"{kind}: {op.name}\n{op.stack}")
    print(
        table(
            [
                {"kernel-like op": n, "per step": c}
                for n, c in recorder.names("kernel").most_common(12)
            ]
        )
    )
    figures["graph_break_reasons"] = breaks.get("reasons", [])
    return figures


def graph_breaks(step: TrainStep) -> dict:
    """torch._dynamo.explain of the step's loss on its own device, else a small CPU one."""
    out: dict = {}
    for where in ("original shape on meta", "original options, batch 2 x 20, vocab 20,000, CPU"):
        try:
            if where.startswith("original options"):
                step = synthetic.original_shape_step(vocab_size=20_000, batch_size=2, device="cpu")
            torch._dynamo.reset()
            with path.use("accelerator"):
                explained = torch._dynamo.explain(step.loss)(step.batch)
            reasons = [str(getattr(b, "reason", b))[:200] for b in explained.break_reasons]
            return {
                "graph_breaks": explained.graph_break_count,
                "graphs": explained.graph_count,
                "reasons": reasons[:5],
                "how": f"torch._dynamo.explain of the loss, {where}",
            }
        except Exception as error:  # noqa: BLE001  (reported)
            out = {"how": f"explain failed ({where}): {type(error).__name__}: {error}"[:300]}
    return out


def loader(args) -> list[dict]:
    from elmo_lm.data.datamodule import ElmoDataModule

    rows = []
    for workers in args.workers:
        dm = ElmoDataModule(
            train_files=str(ROOT / "data/sample/train.txt"),
            batch_size=args.batch_size,
            unroll_steps=args.unroll_steps,
            num_workers=workers,
        )
        dm.setup()
        it = iter(dm.train_dataloader())
        next(it)  # the workers' start
        t, n = time.perf_counter(), 0
        for _ in range(args.loader_batches):
            batch = next(it, None)
            if batch is None:
                break
            n += batch["fwd_targets"].numel()
        rate = n / (time.perf_counter() - t)
        del it
        rows.append(
            {
                "workers": workers,
                "batches": n // (args.batch_size * args.unroll_steps),
                "tokens/s": round(rate),
            }
        )
    print(f"data loader on data/sample, batch {args.batch_size} x {args.unroll_steps}")
    print(table(rows))
    return rows


def _gpu_step(args, vocab, device) -> TrainStep:
    return synthetic.original_shape_step(
        batch_size=args.batch_size,
        unroll_steps=args.unroll_steps,
        n_negative_samples=args.negatives,
        device=device,
        path_name="auto",
        vocab=vocab,
    )


def _peak_tflops(precision: str) -> float | None:
    name = torch.cuda.get_device_name()
    for part, peaks in PEAK_TFLOPS.items():
        if part in name:
            return peaks[precision]
    return None


def _precision(precision: str):
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"
    if precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cuda", enabled=False)


def gpu(args) -> list[dict]:
    distributed = args.ddp and "LOCAL_RANK" in os.environ
    if distributed:
        import torch.distributed as dist

        dist.init_process_group("nccl")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    device = torch.device("cuda", torch.cuda.current_device())
    vocab = synthetic.synthetic_vocab(args.vocab)
    step = _gpu_step(args, vocab, device)
    flops = audit.executed_flops(step)  # per step, whatever the precision
    rows, losses = [], {}
    for precision in args.precisions:
        for mode in args.compile_modes:
            try:
                row = _configuration(args, step, precision, mode, flops, distributed)
            except Exception as error:  # noqa: BLE001  (reported, the others still run)
                row = {
                    "precision": precision,
                    "compile": mode,
                    "error": f"{type(error).__name__}: {error}"[:200],
                }
            rows.append(row)
            losses.setdefault(precision, row.get("loss"))
    world = torch.distributed.get_world_size() if distributed else 1
    columns = ["precision", "compile", "step ms", "tokens/s", "forward ms", "backward ms", "clip ms",
               "optimizer ms", "all-reduce ms", "kernels", "host syncs", "peak alloc GB",
               "peak reserved GB", "MFU %", "error"]  # fmt: skip
    if not distributed or torch.distributed.get_rank() == 0:
        print(f"{torch.cuda.get_device_name()}, {world} rank(s), {flops / 1e12:.2f} TFLOP per step")
        print(table([{c: r.get(c, "") for c in columns} for r in rows], columns))
        if losses.get("fp32") and losses.get("bf16"):
            print(
                f"bf16 vs fp32 loss (same weights, batch, seed): {losses['bf16']:.5f} vs {losses['fp32']:.5f}"
            )
    return rows


def _configuration(args, step: TrainStep, precision, mode, flops, distributed) -> dict:
    from elmo_lm.training.gradients import all_reduce_mean_grads

    step.module.set_compile(mode)  # what compile= does: the window's loss compiled whole
    step.module.bilm.lstm.bf16_recurrence = precision == "bf16"  # bf16_recurrence=true
    phases: dict[str, list[float]] = {}

    def one_step(timed: bool):
        events = [torch.cuda.Event(enable_timing=True) for _ in range(5)]
        step.optimizer.zero_grad(set_to_none=True)
        events[0].record()
        torch.manual_seed(0)
        with _precision(precision):
            loss = step.loss()
            events[1].record()
            step.backward(loss)
        events[2].record()
        if distributed:
            all_reduce_mean_grads(step.module.parameters())
        events[3].record()
        step.clip()
        step.update()
        events[4].record()
        if timed:
            torch.cuda.synchronize()
            names = ("forward", "backward", "all-reduce", "clip+optimizer")
            for name, a, b in zip(names, events, events[1:]):
                phases.setdefault(name, []).append(a.elapsed_time(b))
        return loss

    with path.use("auto"):
        state = copy.deepcopy(step.module.state_dict())  # every configuration from the same weights
        for _ in range(args.warmup):
            loss = one_step(False)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            one_step(True)
            times.append(time.perf_counter() - t)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            one_step(False)
            torch.cuda.synchronize()
        kernels = sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                one_step(False)
                torch.cuda.synchronize()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        syncs = sum("synchroniz" in str(w.message) for w in caught)
        step.module.load_state_dict(state)
        torch.manual_seed(0)
        with torch.no_grad(), _precision(precision):
            loss = float(step.loss())  # the same weights and draws for every precision
    ms = statistics.median(times) * 1e3
    tokens = args.batch_size * args.unroll_steps
    world = torch.distributed.get_world_size() if distributed else 1
    peak = _peak_tflops(precision)
    med = {k: statistics.median(v) for k, v in phases.items()}
    return {
        "precision": precision,
        "compile": mode,
        "step ms": f"{ms:.1f}",
        "tokens/s": f"{tokens * world / ms * 1e3:,.0f}",
        "forward ms": f"{med['forward']:.1f}" if mode == "none" else "",
        "backward ms": f"{med['backward']:.1f}"
        if mode == "none"
        else f"fwd+bwd {med['forward'] + med['backward']:.1f}",
        "clip ms": "",
        "optimizer ms": f"clip+opt {med['clip+optimizer']:.1f}",
        "all-reduce ms": f"{med['all-reduce']:.1f}" if distributed else "",
        "kernels": kernels,
        "host syncs": syncs,
        "peak alloc GB": f"{torch.cuda.max_memory_allocated() / 1e9:.2f}",
        "peak reserved GB": f"{torch.cuda.max_memory_reserved() / 1e9:.2f}",
        "MFU %": f"{100 * flops / (ms / 1e3) / (peak * 1e12):.1f}" if peak else "",
        "loss": loss,
    }


def check(args) -> dict:
    """One step on the GPU against the CPU path: same weights, same batch, eval mode."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    vocab = synthetic.synthetic_vocab(args.check_vocab)
    cpu = synthetic.original_shape_step(
        batch_size=args.check_batch, vocab=vocab, device="cpu", path_name="auto"
    )
    gpu_module = copy.deepcopy(cpu.module).cuda()
    on_gpu = TrainStep(
        gpu_module,
        gpu_module.configure_optimizers(),
        {k: v.cuda() for k, v in cpu.batch.items()},
        "auto",
    )
    found = {}
    for name, step in (("cpu", cpu), ("gpu", on_gpu)):
        step.module.eval()  # no dropout, the full softmax: nothing random
        with path.use(step.path):
            step.optimizer.zero_grad(set_to_none=True)
            loss = step.loss()
            step.backward(loss)
            grads = {
                n: (p.grad.to_dense() if p.grad.is_sparse else p.grad).double().cpu()
                for n, p in step.module.named_parameters()
                if p.grad is not None
            }  # noqa: E501
            step.clip()
            step.update()
        params = {n: p.detach().double().cpu() for n, p in step.module.named_parameters()}
        found[name] = (float(loss), grads, params)

    def rel(a, b):
        return float((a - b).norm() / b.norm().clamp(min=1e-12))

    (cl, cg, cp), (gl, gg, gp) = found["cpu"], found["gpu"]
    rows = [
        {
            "what": "loss",
            "relative error": f"{abs(gl - cl) / abs(cl):.2e}",
            "tolerance": CHECK_RTOL["loss"],
            "ok": abs(gl - cl) / abs(cl) <= CHECK_RTOL["loss"],
        }
    ]  # noqa: E501
    worst_g = max(((rel(gg[n], cg[n]), n) for n in cg), default=(0.0, ""))
    worst_p = max(((rel(gp[n], cp[n]), n) for n in cp), default=(0.0, ""))
    rows.append(
        {
            "what": f"gradient (worst: {worst_g[1]})",
            "relative error": f"{worst_g[0]:.2e}",
            "tolerance": CHECK_RTOL["grad"],
            "ok": worst_g[0] <= CHECK_RTOL["grad"],
        }
    )  # noqa: E501
    rows.append(
        {
            "what": f"updated parameter (worst: {worst_p[1]})",
            "relative error": f"{worst_p[0]:.2e}",
            "tolerance": CHECK_RTOL["param"],
            "ok": worst_p[0] <= CHECK_RTOL["param"],
        }
    )  # noqa: E501
    rows.append(
        {
            "what": "same gradients",
            "relative error": "",
            "tolerance": "",
            "ok": cg.keys() == gg.keys(),
        }
    )
    print(
        f"--check: batch {args.check_batch} x {args.unroll_steps}, vocabulary {args.check_vocab:,}, fp32"
    )
    print(table(rows))
    return {
        "ok": all(r["ok"] for r in rows),
        "rows": [{k: str(v) for k, v in r.items()} for r in rows],
    }


if __name__ == "__main__":
    main()
