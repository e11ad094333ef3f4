"""Issue 14's GPT target: chainrule and a PyTorch twin trained side by side on Shakespeare.

    python benchmarks/gpt_shakespeare.py                  # the target: 2000 iterations, 2 seeds
    python benchmarks/gpt_shakespeare.py --threads 1      # the same on a machine others share
    python benchmarks/gpt_shakespeare.py --quick          # a smoke run (30 iterations, 1 seed)
    python benchmarks/gpt_shakespeare.py --iters 300 --seeds 3 --gelu none --eval-batches 40

nanoGPT's CPU configuration for character-level Shakespeare: n_layer 4, n_head 4, n_embd 128,
block_size 64, batch 12, dropout 0; AdamW (lr 1e-3, betas (0.9, 0.99), weight decay 0.1 on the
matrices and embeddings only, as nanoGPT's configure_optimizers), 100 warm-up steps then a
cosine down to 1e-4 at the last iteration, gradient clipping at norm 1.0. The bundled corpus,
first 90% for training and last 10% for validation.

For each seed both models start from the same weights (chainrule's GPT, drawn from the seed,
loaded into chainrule.check.torch_twins.GPT through its state dict) and see the same batches
(chainrule.data.text.RandomBlocks with the seed: those ``chainrule train --seed`` sees), in
float32, with the same GELU form (``--gelu``; chainrule's default is tanh's, nanoGPT's the exact
one). They train step by step in turn, in this one process, the order swapped every step so
that neither always runs on caches the other warmed; each step (forward, loss, backward,
clipping, AdamW, schedule) is timed on its own, and the table gives the medians over every
seed's steps (the first few left out as warm-up). At the end both are evaluated on the same
fixed validation batches (FixedBlocks: consecutive blocks in one shuffled order, all of the
split by default), and the table gives each library's loss per seed, their means and the
difference. Issue 14's targets: |difference| <= 0.02 and chainrule/torch time <= 1.0.

The process is tuned as the ``chainrule`` command tunes its own (``cr.kernels.tune_process()``),
OpenBLAS's threads spin briefly (``OPENBLAS_THREAD_TIMEOUT=4`` unless set) and torch uses as
many threads as chainrule, as in the other benchmarks. ``--threads N`` gives both libraries N
(chainrule's splits, NumPy's BLAS, torch): on a machine that other processes keep busy, steps
on two threads wait for each other's core and run many times slower (seconds, not tenths of
a second, on 2 shared cores), so figures there are taken with ``--threads 1``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# OpenBLAS reads its spin time once, when NumPy loads it: set before the imports.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
import torch  # noqa: E402

import chainrule as cr  # noqa: E402
from chainrule import models, optim  # noqa: E402
from chainrule.check import torch_twins  # noqa: E402
from chainrule.data.text import TextDataset, load_text_dataset  # noqa: E402
from chainrule.nn import functional as F  # noqa: E402

#: steps at the start of each seed's run left out of the time medians (first allocations)
WARMUP_STEPS_UNTIMED = 5
#: nanoGPT's README: about this validation loss after ~3 minutes on a laptop CPU
NANOGPT_REFERENCE = 1.88


@dataclass
class Config:
    """One run's settings; the defaults are nanoGPT's CPU configuration (issue 14)."""

    iters: int = 2000
    seeds: int = 2
    eval_batches: int | None = None  # None: every validation block
    gelu: str = "tanh"
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 64
    batch_size: int = 12
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0

    def warmup_steps(self) -> int:
        """nanoGPT's 100 warm-up steps; a run shorter than that warms up for 5% of it."""
        return self.warmup if self.iters > self.warmup else self.iters // 20


@dataclass
class SeedResult:
    """What one seed's side-by-side run measured."""

    seed: int
    start_gap: float  # |chainrule - torch| of the first step's loss: same weights, same batch
    train_loss: dict[str, float] = field(default_factory=dict)  # the last step's
    valid_loss: dict[str, float] = field(default_factory=dict)
    step_seconds: dict[str, list[float]] = field(default_factory=dict)


def nanogpt_lr(step: int, config: Config) -> float:
    """nanoGPT's get_lr, written out for the torch side: linear warm-up, cosine, floor."""
    warmup, total = config.warmup_steps(), config.iters
    if step < warmup:
        return config.lr * (step + 1) / (warmup + 1)
    if step > total:
        return config.min_lr
    ratio = (step - warmup) / (total - warmup)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (config.lr - config.min_lr)


def build_pair(vocab_size: int, config: Config, seed: int
               ) -> tuple[cr.nn.Module, torch.nn.Module]:
    """chainrule's GPT drawn from ``seed`` and its torch twin holding the same weights."""
    ours = models.build_model("gpt", vocab_size=vocab_size, block_size=config.block_size,
                              n_layer=config.n_layer, n_head=config.n_head,
                              n_embd=config.n_embd, dropout=0.0, approximate=config.gelu,
                              generator=np.random.default_rng(seed))
    twin = torch_twins.GPT(vocab_size, config.block_size, config.n_layer, config.n_head,
                           config.n_embd, dropout=0.0, approximate=config.gelu)
    state = {k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}
    state["lm_head.weight"] = state["transformer.wte.weight"]  # torch lists the tie twice
    twin.load_state_dict(state)
    return ours, twin


def decay_groups(parameters: Iterable, weight_decay: float) -> list[dict]:
    """nanoGPT's two groups: matrices and embeddings decay, biases and LayerNorm gains not."""
    parameters = list(parameters)
    return [{"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0}]


def chainrule_stepper(model: cr.nn.Module, config: Config
                      ) -> tuple[Callable[[np.ndarray, np.ndarray], float], optim.Optimizer]:
    """One training step of chainrule's GPT on a batch, and its optimizer (to read the lr)."""
    parameters = model.parameters()
    opt = optim.AdamW(decay_groups(parameters, config.weight_decay), lr=config.lr,
                      betas=(0.9, config.beta2))
    schedule = optim.WarmupCosineLR(opt, config.warmup_steps(), config.iters,
                                    eta_min=config.min_lr)
    model.train()

    def step(x: np.ndarray, y: np.ndarray) -> float:
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(parameters, config.grad_clip)
        opt.step()
        schedule.step()
        return loss.item()

    return step, opt


def torch_stepper(model: torch.nn.Module, config: Config
                  ) -> tuple[Callable[[np.ndarray, np.ndarray], float], torch.optim.Optimizer]:
    """The same step in torch, nanoGPT's loop: the lr set by hand before each step."""
    parameters = list(model.parameters())
    opt = torch.optim.AdamW(decay_groups(parameters, config.weight_decay), lr=config.lr,
                            betas=(0.9, config.beta2))
    model.train()
    count = 0

    def step(x: np.ndarray, y: np.ndarray) -> float:
        nonlocal count
        for group in opt.param_groups:
            group["lr"] = nanogpt_lr(count, config)
        count += 1
        logits = model(torch.from_numpy(x))
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]),
                                                 torch.from_numpy(y).view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        opt.step()
        return loss.item()

    return step, opt


def validation_batches(data: TextDataset, config: Config) -> list[tuple[np.ndarray, np.ndarray]]:
    """The fixed validation batches both libraries are scored on, as int64 arrays."""
    loader = data.valid_loader(config.batch_size, config.block_size,
                               batches=config.eval_batches)
    return [(np.ascontiguousarray(x.data), np.ascontiguousarray(y.data)) for x, y in loader]


def evaluate_chainrule(model: cr.nn.Module, batches: list[tuple[np.ndarray, np.ndarray]]
                       ) -> float:
    """Mean loss per predicted character over ``batches`` (a short last batch weighs less)."""
    model.eval()
    total = 0.0
    with cr.no_grad():
        for x, y in batches:
            logits = model(x)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                     reduction="sum").item()
    model.train()
    return total / sum(y.size for _, y in batches)


def evaluate_torch(model: torch.nn.Module, batches: list[tuple[np.ndarray, np.ndarray]]
                   ) -> float:
    """The same in torch."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in batches:
            logits = model(torch.from_numpy(x))
            total += torch.nn.functional.cross_entropy(
                logits.view(-1, logits.shape[-1]), torch.from_numpy(y).view(-1),
                reduction="sum").item()
    model.train()
    return total / sum(y.size for _, y in batches)


def train_seed(data: TextDataset, config: Config, seed: int,
               valid: list[tuple[np.ndarray, np.ndarray]], log_every: int = 0,
               out: Callable[[str], None] = print) -> SeedResult:
    """Train both models from one seed step by step in turn, timing each step; evaluate."""
    cr.manual_seed(seed)
    torch.manual_seed(seed)
    ours, twin = build_pair(data.vocab.size, config, seed)
    steppers = {"chainrule": chainrule_stepper(ours, config),
                "torch": torch_stepper(twin, config)}
    loader = data.train_loader(config.batch_size, config.block_size, seed=seed)
    times: dict[str, list[float]] = {name: [] for name in steppers}
    losses: dict[str, float] = {}
    start_gap = math.nan
    started = time.perf_counter()
    for step in range(config.iters):
        # the batches `chainrule train --seed` sees: epoch after epoch of RandomBlocks
        x, y = (np.ascontiguousarray(t.data)  # both libraries get C-ordered int64
                for t in loader.batch(*divmod(step, len(loader))))
        order = list(steppers) if step % 2 == 0 else list(steppers)[::-1]
        for name in order:
            run, _ = steppers[name]
            begin = time.perf_counter()
            losses[name] = run(x, y)
            times[name].append(time.perf_counter() - begin)
        lrs = {name: opt.param_groups[0]["lr"] for name, (_, opt) in steppers.items()}
        # chainrule's scheduler has moved to the next step's rate; torch's was this step's
        if not math.isclose(lrs["torch"], nanogpt_lr(step, config), rel_tol=1e-12) or \
                not math.isclose(lrs["chainrule"], nanogpt_lr(step + 1, config), rel_tol=1e-12):
            raise AssertionError(f"step {step}: the two schedules differ ({lrs})")
        if step == 0:
            start_gap = abs(losses["chainrule"] - losses["torch"])
        if log_every and (step + 1) % log_every == 0:
            out(f"  seed {seed} step {step + 1:>5}/{config.iters}: train loss chainrule "
                f"{losses['chainrule']:.4f}  torch {losses['torch']:.4f}  "
                f"({time.perf_counter() - started:.0f} s)")
    result = SeedResult(seed, start_gap, dict(losses))
    result.valid_loss = {"chainrule": evaluate_chainrule(ours, valid),
                         "torch": evaluate_torch(twin, valid)}
    result.step_seconds = {name: kept[WARMUP_STEPS_UNTIMED:] or kept
                           for name, kept in times.items()}
    return result


def summary(results: list[SeedResult]) -> dict[str, float]:
    """Mean validation losses and their difference; median step times and their ratio."""
    mean = {name: statistics.fmean(r.valid_loss[name] for r in results)
            for name in ("chainrule", "torch")}
    median = {name: statistics.median(t for r in results for t in r.step_seconds[name])
              for name in ("chainrule", "torch")}
    return {"valid_chainrule": mean["chainrule"], "valid_torch": mean["torch"],
            "valid_difference": mean["chainrule"] - mean["torch"],
            "ms_chainrule": median["chainrule"] * 1e3, "ms_torch": median["torch"] * 1e3,
            "time_ratio": median["chainrule"] / median["torch"]}


def parse_args(argv: list[str] | None = None) -> tuple[Config, argparse.Namespace]:
    """The run's Config from the command line (``--quick`` fills what is not given)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, help="training steps per seed (default 2000)")
    parser.add_argument("--seeds", type=int, help="seeds 0..N-1, each trained in both "
                        "libraries (default 2)")
    parser.add_argument("--eval-batches", type=int, help="validation batches of 12 blocks "
                        "scored at the end (default: all of the split's blocks)")
    parser.add_argument("--gelu", choices=("tanh", "none"), default="tanh",
                        help="the GELU's form in both models: tanh's (chainrule's default) "
                        "or the exact erf (nanoGPT's; slower in chainrule)")
    parser.add_argument("--threads", type=int,
                        help="threads for both libraries (chainrule's splits, BLAS, torch); "
                        "default: the usable cores. On a busy machine 1 avoids threads "
                        "waiting on each other for a core")
    parser.add_argument("--log-every", type=int, default=250,
                        help="print both training losses every N steps (0: never)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 30 iterations, 1 seed, 4 validation batches")
    args = parser.parse_args(argv)
    quick = {"iters": 30, "seeds": 1, "eval_batches": 4} if args.quick else {}
    config = Config(gelu=args.gelu)
    for name in ("iters", "seeds", "eval_batches"):
        value = getattr(args, name)
        value = quick.get(name) if value is None else value
        if value is not None:
            setattr(config, name, value)
    for name, low in (("iters", 1), ("seeds", 1), ("eval_batches", 1), ("threads", 1)):
        value = getattr(args if name == "threads" else config, name)
        if value is not None and value < low:
            parser.error(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    if args.log_every < 0:
        parser.error(f"--log-every must be 0 or more, got {args.log_every}")
    return config, args


def use_threads(threads: int | None) -> dict[str, int | None]:
    """Give both libraries ``threads`` threads (None: chainrule's count, the usable cores);
    return each one's count: chainrule's own splits, NumPy's BLAS, torch."""
    if threads is not None:
        os.environ["CHAINRULE_NUM_THREADS"] = str(threads)  # chainrule reads it at each split
        blas = cr.kernels.blas_threads()
        if blas is not None:
            blas[1](threads)
    torch.set_num_threads(cr.kernels.num_threads())
    blas = cr.kernels.blas_threads()
    return {"chainrule": cr.kernels.num_threads(), "blas": blas[0]() if blas else None,
            "torch": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the benchmark, print its table and return the summary's figures."""
    config, args = parse_args(argv)
    cr.kernels.tune_process()  # freed buffers kept between steps, as a training run has them
    threads = use_threads(args.threads)
    data = load_text_dataset("shakespeare-char")
    valid = validation_batches(data, config)
    print(f"GPT n_layer {config.n_layer}, n_head {config.n_head}, n_embd {config.n_embd}, "
          f"block_size {config.block_size}, batch {config.batch_size}, GELU {config.gelu}; "
          f"{config.iters} iterations, AdamW lr {config.lr:g} (warm-up "
          f"{config.warmup_steps()}, cosine to {config.min_lr:g}), betas (0.9, "
          f"{config.beta2}), weight decay {config.weight_decay}, clip {config.grad_clip}; "
          f"float32")
    print(f"data: {data!r}; validation: {len(valid)} batches "
          f"({sum(y.size for _, y in valid):,} characters)")
    print(f"threads: chainrule {threads['chainrule']} (BLAS {threads['blas']}), torch "
          f"{threads['torch']}; "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT')}; "
          f"numpy {np.__version__}, torch {torch.__version__}, {platform.machine()}",
          flush=True)
    results = []
    for seed in range(config.seeds):
        results.append(train_seed(data, config, seed, valid, args.log_every,
                                  out=lambda line: print(line, flush=True)))
    print()
    print(f"{'seed':<6}{'valid chainrule':>16}{'valid torch':>13}{'difference':>12}"
          f"{'first-step gap':>16}{'ms chainrule':>14}{'ms torch':>10}{'ratio':>7}")
    print("-" * 94)
    for r in results:
        ms = {name: statistics.median(t) * 1e3 for name, t in r.step_seconds.items()}
        print(f"{r.seed:<6}{r.valid_loss['chainrule']:>16.4f}{r.valid_loss['torch']:>13.4f}"
              f"{r.valid_loss['chainrule'] - r.valid_loss['torch']:>+12.4f}"
              f"{r.start_gap:>16.1e}{ms['chainrule']:>14.1f}{ms['torch']:>10.1f}"
              f"{ms['chainrule'] / ms['torch']:>7.2f}")
    figures = summary(results)
    print("-" * 94)
    print(f"{'mean':<6}{figures['valid_chainrule']:>16.4f}{figures['valid_torch']:>13.4f}"
          f"{figures['valid_difference']:>+12.4f}{'':>16}{figures['ms_chainrule']:>14.1f}"
          f"{figures['ms_torch']:>10.1f}{figures['time_ratio']:>7.2f}")
    print(f"\ntargets (issue 14): |difference| <= 0.02: "
          f"{'met' if abs(figures['valid_difference']) <= 0.02 else 'NOT met'}; time ratio "
          f"<= 1.0: {'met' if figures['time_ratio'] <= 1.0 else 'NOT met'}. nanoGPT's README: "
          f"~{NANOGPT_REFERENCE} on its own Shakespeare file, exact GELU, its own seeds.")
    print("time: median ms per training step over all seeds' steps but each run's first "
          f"{WARMUP_STEPS_UNTIMED}, the libraries alternating step by step")
    words = sys.argv if argv is None else ["benchmarks/gpt_shakespeare.py", *argv]
    print("command: " + shlex.join(["python", *words]))
    return figures


if __name__ == "__main__":
    main()
