"""Speed benchmark: fit time per epoch of every method against ``ce``.

Run ``python benchmarks/speed.py --help``.  Every method is fitted on the same
data with the same module, batch size and number of epochs; the fits are
repeated (methods interleaved, so that load from other processes spreads
evenly) and the median time per epoch is reported with its ratio to ``ce``.

* ``warmup_epochs=0`` for every method, so that the meta step runs in every
  epoch: the ratio is the steady-state cost of a meta epoch, the worst case.
  ``--warmup default`` keeps each method's own warm-up instead (a share of
  ``--epochs``: the fit time users get with the defaults; use ``--epochs 10``
  or more so that the share rounds to whole epochs).
* CPU case: a 784 -> 256 -> 256 -> 10 MLP (the default ``hidden_layer_sizes``)
  on 10k synthetic 784-feature samples, batch 128, 40% of the labels flipped
  (symmetric; ``--noise 0.8`` for heavy noise, where ``mlc`` and ``mfrw`` take
  their heavy-noise settings, ``heavy_noise_``: the table marks those rows).
* CUDA cases (only when ``torch.cuda.is_available()``): the same, and 200k x
  512 embeddings with 100 classes, batch 512, reporting samples per second and
  peak GPU memory.
* ``--cases mlp,embeddings`` times that larger case on the CPU too (the
  embeddings of a text or image model that users fit on a CPU; ``--cases
  embeddings`` alone).  CPU rows report the peak host memory of a fit: how far
  the process's resident memory rose above where it stood before the fit
  (Linux, from ``/proc``; free heap memory handed back to the system first).
* ``--meta-every default,1,2`` adds rows for the ``meta_every`` lever
  (``default``: each method's own, the classifier's ``meta_every=None``), and
  ``--reuse-virtual-grad default,off,on`` for the ``reuse_virtual_grad`` lever
  (``on`` only for the methods that allow it).
* The time per epoch is the mean of the epochs' own durations (skorch's
  ``dur``), without the fixed work of a fit (building the net, the fitted
  attributes); the whole fit over the epochs is reported beside it.
* Memory: the per-sample tables that each method keeps (rows x classes) are
  read from a small fit and scaled to 1M samples x 100 classes.
* Arithmetic (CPU cases; ``--no-flops`` skips it): the floating-point
  operations of the matrix products of an epoch, counted by
  :class:`torch.utils.flop_counter.FlopCounterMode` over the second epoch of
  a 2-epoch fit (from the epoch's start to its last callback), so the fixed
  work of a fit (the trusted-set check, the pre-training, the fitted
  attributes) drops out, as a ratio to ``ce``'s.  Unlike the times it does
  not depend on the machine or its load: it is what a method's step must
  compute whatever the implementation, while the element-wise work (optimizer
  steps, the look-ahead's Adam scaling) and the per-batch overhead that the
  times also hold are not counted.

``--quick`` runs a tiny configuration in well under a minute (used by the tests).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from skorch.callbacks import Callback

from sklearn_noisy import MetaLabelCorrectionClassifier
from sklearn_noisy.methods import available_methods, get_method

# benchmarks/accuracy.py, beside this script, also when this file is imported by path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accuracy import _git_state  # noqa: E402


def synthetic(n_samples, n_features, n_classes, n_meta_per_class=10, noise=0.4, seed=0):
    """Features from a Gaussian mixture, labels with symmetric noise, a trusted set."""
    rng = np.random.RandomState(seed)
    centers = rng.normal(size=(n_classes, n_features)).astype(np.float32)
    y = np.r_[
        rng.permutation(np.arange(n_samples) % n_classes),  # every class present
        np.repeat(np.arange(n_classes), n_meta_per_class),
    ]
    X = centers[y] + 2.0 * rng.normal(size=(len(y), n_features)).astype(np.float32)
    X /= np.sqrt(n_features)
    flip = rng.random_sample(n_samples) < noise
    y_noisy = y[:n_samples].copy()
    y_noisy[flip] = (y_noisy[flip] + rng.randint(1, n_classes, flip.sum())) % n_classes
    return X[:n_samples], y_noisy, X[n_samples:], y[n_samples:]


def _fit_once(method, data, cfg, device, meta_every, reuse=None, callbacks=None):
    X, y, X_meta, y_meta = data
    _EPOCH_DURATIONS.clear()
    clf = MetaLabelCorrectionClassifier(
        method=method,
        max_epochs=cfg["epochs"],
        batch_size=cfg["batch_size"],
        warmup_epochs=cfg.get("warmup_epochs", 0),
        meta_every=meta_every,
        reuse_virtual_grad=reuse,
        device=device,
        random_state=0,
        callbacks=[*(callbacks or []), _RecordEpochDurations()],
    )
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = _reset_host_peak()
    start = time.perf_counter()
    clf.fit(X, y, X_meta=X_meta, y_meta=y_meta)
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    else:
        after = _host_memory("VmHWM")
        peak = None if before is None or after is None else max(after - before, 0)
    # every run's epochs, each at its own cost: a method that trains more than
    # once (glc) shows only its last run in history_
    durations = _EPOCH_DURATIONS[-clf.method_.training_runs * len(clf.history_) :]
    per_run = len(clf.history_)
    epochs = [sum(durations[i::per_run]) for i in range(per_run)]
    # what the fit resolved its settings to (the row's columns of the same names)
    resolved = {
        "meta_every": clf.net_.meta_every,
        "reuse_virtual_grad": clf.net_.reuse_virtual_grad,
        "heavy_noise_settings": bool(clf.heavy_noise_),
        "warmup_epochs": clf.net_.warmup_epochs,
    }
    return elapsed, peak, epochs, resolved


def _host_memory(field):
    """A memory figure of this process from ``/proc/self/status`` in bytes, or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # the file says kB
    except OSError:
        pass
    return None


def _reset_host_peak():
    """Start measuring the peak host memory of a fit; the resident memory now, or None.

    Free heap memory is handed back to the system first (glibc's
    ``malloc_trim``), so that what an earlier fit left behind is not counted
    as resident before this one (it would hide this fit's own growth), and the
    kernel's record of the peak (``VmHWM``) is reset (``/proc/self/clear_refs``,
    Linux 4.0 and later).  None where either is missing.
    """
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except (OSError, AttributeError):
        return None
    return _host_memory("VmRSS")


#: skorch's ``dur`` of every epoch of a fit, every run of it (:class:`_RecordEpochDurations`)
_EPOCH_DURATIONS: list[float] = []


class _RecordEpochDurations(Callback):
    """Appends each epoch's duration (skorch's ``dur``) to ``_EPOCH_DURATIONS``.

    For ``glc``, whose first run's history is not kept (``history_`` is the
    second run's), so that each run counts at its own cost.  The timer records
    ``dur`` before the user callbacks' ``on_epoch_end``.
    """

    def on_epoch_end(self, net, **kwargs):
        _EPOCH_DURATIONS.append(float(net.history[-1, "dur"]))


#: (epoch number, FLOPs) of every epoch :class:`_CountEpochFlops` counted; a
#: module-level list, because the classifier gives each net a copy of the callback
_EPOCH_FLOPS: list[tuple[int, int]] = []


class _CountEpochFlops(Callback):
    """Counts the matrix products' FLOPs of each training epoch into ``_EPOCH_FLOPS``.

    A user callback runs after the library's own, so the count starts after
    their ``on_epoch_begin`` (learning-rate schedules: no products) and ends
    after their ``on_epoch_end`` (the warm-up's scoring, the averaging): the
    whole epoch.  The trusted-set check and the pre-training run outside every
    epoch and are not counted.
    """

    def on_epoch_begin(self, net, **kwargs):
        from torch.utils.flop_counter import FlopCounterMode

        self.counter_ = FlopCounterMode(display=False)
        self.counter_.__enter__()

    def on_epoch_end(self, net, **kwargs):
        self.counter_.__exit__(None, None, None)
        _EPOCH_FLOPS.append((len(net.history), self.counter_.get_total_flops()))
        del self.counter_


def _epoch_flops(method, data, cfg, meta_every, reuse, warmup_epochs):
    """FLOPs of the matrix products of one epoch: the second epoch of a 2-epoch fit.

    ``warmup_epochs`` is passed to the fit (0: a meta epoch; 2: a warm-up
    epoch).  Counted on the CPU; a method that trains twice (``glc``) adds both
    runs' second epochs, as the times do.
    """
    _EPOCH_FLOPS.clear()
    short = {**cfg, "epochs": 2, "warmup_epochs": warmup_epochs}
    _fit_once(method, data, short, "cpu", meta_every, reuse, callbacks=[_CountEpochFlops()])
    return sum(flops for epoch, flops in _EPOCH_FLOPS if epoch == 2)


def fit_flops(method, data, cfg, meta_every, reuse, warmup=0):
    """FLOPs per epoch of a fit with ``cfg``'s epochs and ``warmup`` warm-up epochs
    (the warm-up the timed fits resolved to; see :func:`_epoch_flops`).

    The warm-up epochs are counted at their own cost and the rest as meta
    epochs.  (A fit that pre-trains on the trusted set may drop its warm-up:
    ``mfrw``, and so its heavy-noise fits.)
    """
    m = get_method(method)
    meta = _epoch_flops(method, data, cfg, meta_every, reuse, 0)
    warmup = min(warmup or 0, cfg["epochs"]) if m.uses_meta_step else 0
    if not warmup:
        return meta
    plain = _epoch_flops(method, data, cfg, meta_every, reuse, 2)
    return (warmup * plain + (cfg["epochs"] - warmup) * meta) / cfg["epochs"]


def _lever_settings(method, meta_every_values, reuse_values):
    """The (meta_every, reuse_virtual_grad) pairs that apply to ``method``."""
    m = get_method(method)
    if not m.uses_meta_step:
        return [(1, None)]
    reuse = [r for r in reuse_values if not r or m.can_reuse_virtual_grad()]
    return [(k, r) for k in meta_every_values for r in reuse]


def time_case(
    name,
    cfg,
    methods,
    device,
    meta_every_values,
    repeats,
    progress,
    reuse_values=(None,),
    flops=False,
):
    """Median time per epoch of each (method, meta_every, reuse) on one configuration.

    ``epoch_time_s`` is the mean of the epochs' own durations (skorch's ``dur``):
    the training cost per epoch, free of the fixed per-fit work (building the
    net, computing the fitted attributes), which would otherwise dilute the
    ratios of short runs.  ``fit_time_per_epoch_s`` is the whole ``fit`` over
    the number of epochs.  A method that trains the network more than once
    (``glc``: ``training_runs == 2``) counts every run's epochs at their own
    cost (:class:`_RecordEpochDurations`; until stop 38, at the cost of the
    last run, the one its ``history_`` records).  ``meta_every`` and ``reuse``
    ``None`` are each method's defaults.  With ``flops`` each entry also gets
    ``flops_per_epoch`` and ``flops_ratio_vs_ce`` (:func:`fit_flops`).
    """
    data = synthetic(
        cfg["n_samples"], cfg["n_features"], cfg["n_classes"], noise=cfg.get("noise", 0.4)
    )
    entries = [("ce", 1, None)] + [
        (m, k, r) for m in methods for k, r in _lever_settings(m, meta_every_values, reuse_values)
    ]
    entries = list(dict.fromkeys(entries))
    # one short fit first (imports, allocator, kernels), on rows that hold every
    # class the trusted set has
    y = data[1]
    rows = np.union1d(np.arange(min(512, len(y))), np.unique(y, return_index=True)[1])
    _fit_once("ce", (data[0][rows], y[rows], *data[2:]), {**cfg, "epochs": 1}, device, 1)
    times = {e: [] for e in entries}
    fit_times = {e: [] for e in entries}
    peaks = {e: None for e in entries}
    resolved = {}
    for r in range(repeats):
        for entry in entries:
            elapsed, peak, epochs, fitted = _fit_once(entry[0], data, cfg, device, *entry[1:])
            times[entry].append(statistics.fmean(epochs))
            fit_times[entry].append(elapsed / cfg["epochs"])
            if peak is not None:
                peaks[entry] = max(peaks[entry] or 0, peak)
            resolved[entry] = fitted
            every, reused = fitted["meta_every"], fitted["reuse_virtual_grad"]
            progress(f"{name} run {r + 1}/{repeats} {entry[0]} meta_every={every} "
                     f"reuse={reused}: {times[entry][-1]:.3f} s/epoch")  # fmt: skip
    base = statistics.median(times[("ce", 1, None)])
    rows = []
    for entry in entries:
        method, k, reuse = entry
        per_epoch = statistics.median(times[entry])
        row = {
            "case": name,
            "device": device,
            "method": method,
            **resolved[entry],
            "meta_every_default": k is None,
            "reuse_virtual_grad_default": reuse is None,
            "epoch_time_s": per_epoch,
            "epoch_times_s": times[entry],
            "ratio_vs_ce": per_epoch / base,
            "fit_time_per_epoch_s": statistics.median(fit_times[entry]),
            "samples_per_s": cfg["n_samples"] / per_epoch,
        }
        peak_mb = None if peaks[entry] is None else peaks[entry] / 2**20
        if device.startswith("cuda"):
            row["peak_gpu_memory_mb"] = peak_mb
        else:
            row["peak_host_memory_mb"] = peak_mb
        if flops:
            warmup = resolved[entry]["warmup_epochs"]
            row["flops_per_epoch"] = fit_flops(method, data, cfg, k, reuse, warmup)
            progress(f"{name} {method} meta_every={k} reuse={reuse}: "
                     f"{row['flops_per_epoch'] / 1e9:.2f} GFLOP / epoch")  # fmt: skip
        rows.append(row)
    if flops:
        base_flops = rows[0]["flops_per_epoch"]  # ce's
        for row in rows:
            row["flops_ratio_vs_ce"] = row["flops_per_epoch"] / base_flops
    return rows


def table_memory(methods, n_rows=1_000_000, n_classes=100, probe_rows=2000):
    """Bytes of the per-sample tables of each method at ``n_rows`` x ``n_classes``.

    A method is fitted for one epoch on ``probe_rows`` rows with ``n_classes``
    classes; every tensor of its meta module and meta optimizer state whose first
    dimension is the number of training rows (noisy rows plus trusted rows
    when the method trains on them) is a per-sample table, and its size is
    scaled to ``n_rows`` training rows.  Trainable tables count once more for their gradient
    (the peak during a meta update).  Added for every method: the engine's label
    and trusted-flag tables, and the classifier's fitted ``corrected_proba_``
    (float64, host memory).
    """
    X, y, X_meta, y_meta = synthetic(probe_rows, 16, n_classes, n_meta_per_class=2)
    rows = []
    for method in methods:
        clf = MetaLabelCorrectionClassifier(
            method=method,
            max_epochs=1,
            batch_size=256,
            warmup_epochs=0,
            hidden_layer_sizes=(32,),
            device="cpu",
            random_state=0,
        )
        clf.fit(X, y, X_meta=X_meta, y_meta=y_meta)
        net = clf.net_
        n = net.train_info.n_samples  # noisy rows, plus trusted rows if trained on
        scale = n_rows / n
        tables = {}
        for key, t in net.meta_module_.state_dict().items():
            if t.ndim and t.shape[0] == n:
                tables[key] = t.element_size() * t.numel()
        params = {p for p in net.meta_module_.parameters() if p.ndim and p.shape[0] == n}
        for p in params:
            tables[f"grad of {tuple(p.shape)}"] = p.element_size() * p.numel()
        if net.meta_optimizer_ is not None:
            for p, state in net.meta_optimizer_.state.items():
                for key, t in state.items():
                    if torch.is_tensor(t) and t.ndim and t.shape[0] == n:
                        tables[f"optimizer {key} {tuple(p.shape)}"] = t.element_size() * t.numel()
        engine = net.train_info.y.element_size() * n + net.train_info.trusted.element_size() * n
        method_bytes = sum(tables.values()) * scale
        shapes = {k: _scaled_shape(v, n, scale) for k, v in net.meta_module_.state_dict().items()}
        rows.append(
            {
                "method": method,
                "tables": {k: v * scale / 2**20 for k, v in tables.items()},
                "table_shapes": {k: s for k, s in shapes.items() if s is not None},
                "method_tables_mb": method_bytes / 2**20,
                "engine_tables_mb": engine * scale / 2**20,
                "corrected_proba_mb": n_rows * n_classes * 8 / 2**20,
            }
        )
    return rows


def _scaled_shape(t, n, scale):
    if not t.ndim or t.shape[0] != n:
        return None
    return [int(round(t.shape[0] * scale)), *t.shape[1:]]


def machine():
    return {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git": _git_state(),
    }


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _warmup_words(cfg):
    warmup = cfg.get("warmup_epochs", 0)
    return "no warm-up" if warmup == 0 else "each method's default warm-up"


def format_table(report) -> str:
    lines = []
    for case in dict.fromkeys(r["case"] for r in report["timings"]):
        rows = [r for r in report["timings"] if r["case"] == case]
        cfg = report["cases"][case]
        gpu = rows[0]["device"].startswith("cuda")
        flops = "flops_ratio_vs_ce" in rows[0]
        # older reports have no host-memory figure; a machine without /proc gives None
        host = not gpu and any(r.get("peak_host_memory_mb") is not None for r in rows)
        memory = " | peak GPU MB" if gpu else (" | peak host MB" if host else "")
        lines += [
            f"### {case}: {cfg['n_samples']} x {cfg['n_features']} -> {cfg['n_classes']} "
            f"classes, batch {cfg['batch_size']}, {cfg['epochs']} epochs, "
            f"{_warmup_words(cfg)}, symmetric noise {cfg.get('noise', 0.4):g}, "
            f"median of {report['repeats']} ({rows[0]['device']})",
            "",
            "| method | meta_every | reuse grad | s / epoch | time / ce | fit s / epoch "
            "| samples / s" + (" | FLOPs / ce" if flops else "") + memory + " |",
            "|---|---|---|---|---|---|---"
            + ("|---" if flops else "")
            + ("|---" if memory else "")
            + "|",
        ]
        for r in rows:
            every = f"{r['meta_every']}" + (" (default)" if r.get("meta_every_default") else "")
            if r.get("heavy_noise_settings"):
                every += ", heavy-noise settings"
            reuse = r.get("reuse_virtual_grad")
            reuse = (
                "-"
                if not get_method(r["method"]).uses_meta_step
                else ("on" if reuse else "off")
                + (" (default)" if r.get("reuse_virtual_grad_default") else "")
            )
            line = (
                f"| {r['method']} | {every} | {reuse} | {r['epoch_time_s']:.3f} | "
                f"{r['ratio_vs_ce']:.2f} | {r['fit_time_per_epoch_s']:.3f} | "
                f"{r['samples_per_s']:,.0f} |"
            )
            if flops:
                line += f" {r['flops_ratio_vs_ce']:.2f} |"
            if memory:
                peak = r["peak_gpu_memory_mb" if gpu else "peak_host_memory_mb"]
                line += " - |" if peak is None else f" {peak:,.0f} |"
            lines.append(line)
        lines.append("")
        if flops:
            lines += [
                "FLOPs / ce: the matrix products' floating-point operations per epoch "
                "against `ce`'s (torch.utils.flop_counter; element-wise work not "
                "counted), the same on any machine and under any load.",
                "",
            ]
        if host:
            lines += [
                "peak host MB: how far the process's resident memory rose during the "
                "fit (the data passed in was already resident; the largest of the runs).",
                "",
            ]
    if report["memory"]:
        m0 = report["memory"][0]
        lines += [
            "### Per-sample tables at 1M samples x 100 classes",
            "",
            f"Every method also holds the engine's label and trusted-flag tables "
            f"({m0['engine_tables_mb']:.0f} MB) and, after fit, `corrected_proba_` "
            f"(float64, {m0['corrected_proba_mb']:,.0f} MB of host memory).",
            "",
            "| method | tables (shape at 1M x 100) | MB |",
            "|---|---|---|",
        ]
        for m in report["memory"]:
            shapes = ", ".join(f"`{k}` {tuple(v)}" for k, v in m["table_shapes"].items())
            lines.append(f"| {m['method']} | {shapes or '-'} | {m['method_tables_mb']:,.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python benchmarks/speed.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--methods", default=None, help="comma-separated (default: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument(
        "--meta-every",
        default="default",
        help="comma-separated values, e.g. default,1,2 ('default': each method's own)",
    )
    parser.add_argument(
        "--reuse-virtual-grad",
        default="default",
        help="comma-separated values of default,off,on ('default': each method's own)",
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.4,
        help="share of the synthetic labels flipped (symmetric); 0.8 is heavy noise, "
        "where mlc and mfrw take their heavy-noise settings",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--warmup",
        choices=["none", "default"],
        default="none",
        help="none: warmup_epochs=0 (every epoch runs the meta step); default: each "
        "method's own warm-up (warmup_epochs=None)",
    )
    parser.add_argument(
        "--cases",
        default="mlp",
        help="comma-separated CPU cases: mlp (the 784-256-256-10 MLP on 10k rows) and "
        "embeddings (200k x 512 embeddings, 100 classes, batch 512)",
    )
    parser.add_argument("--no-cuda", action="store_true", help="skip the CUDA cases")
    parser.add_argument("--no-memory", action="store_true", help="skip the table-memory probe")
    parser.add_argument(
        "--no-flops", action="store_true", help="skip counting the FLOPs of the CPU cases"
    )
    parser.add_argument("--json", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    methods = args.methods.split(",") if args.methods else available_methods()
    if "ce" not in methods:
        methods = ["ce", *methods]
    meta_every = [None if k == "default" else int(k) for k in args.meta_every.split(",")]
    choices = {"default": None, "off": False, "on": True}
    reuse = [choices[v] for v in args.reuse_virtual_grad.split(",")]
    mlp = {
        "n_samples": args.n_samples,
        "n_features": 784,
        "n_classes": 10,
        "batch_size": 128,
        "epochs": args.epochs,
        "warmup_epochs": 0 if args.warmup == "none" else None,
        "noise": args.noise,
    }
    repeats = args.repeats
    if args.quick:
        mlp.update(n_samples=512, epochs=1)
        repeats = 1
    emb = {
        "n_samples": 200_000,
        "n_features": 512,
        "n_classes": 100,
        "batch_size": 512,
        "epochs": 1 if args.quick else args.epochs,
        "warmup_epochs": mlp["warmup_epochs"],
        "noise": args.noise,
    }
    cpu_cases = args.cases.split(",")
    unknown = set(cpu_cases) - {"mlp", "embeddings"}
    if unknown or not cpu_cases:
        parser.error(f"--cases takes mlp and/or embeddings; got {args.cases!r}")
    cases = {}
    if "mlp" in cpu_cases:
        cases["mlp-784-cpu"] = (mlp, "cpu")
    if "embeddings" in cpu_cases:
        cases["embeddings-200k-cpu"] = ({**emb, "n_samples": 2_000} if args.quick else emb, "cpu")
    if torch.cuda.is_available() and not args.no_cuda:
        cases["mlp-784-cuda"] = (mlp, "cuda")
        cases["embeddings-200k-cuda"] = (
            {**emb, "n_samples": 20_000} if args.quick else emb,
            "cuda",
        )

    def progress(msg):
        print(msg, file=sys.stderr, flush=True)

    where = machine()  # before the fits: the commit the code was loaded from
    timings = []
    for name, (cfg, device) in cases.items():
        count = not args.no_flops and device == "cpu"
        timings += time_case(
            name, cfg, methods, device, meta_every, repeats, progress, reuse, flops=count
        )
    memory = (
        [] if args.no_memory else table_memory(methods, probe_rows=500 if args.quick else 2000)
    )
    report = {
        "machine": where,
        "command": " ".join(
            ["python benchmarks/speed.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "repeats": repeats,
        "cases": {name: cfg for name, (cfg, _) in cases.items()},
        "timings": timings,
        "memory": memory,
    }
    print(format_table(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
