"""Small helpers shared by every step: atomic files, seeding, device and precision."""
from __future__ import annotations

import contextlib
import logging
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path, load_json, save_json  # noqa: F401  (re-exported)

log = logging.getLogger("genreview")


# --------------------------------------------------------------------------- files

def torch_save(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# --------------------------------------------------------------------------- randomness

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- device

def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for, but torch sees no CUDA device; "
                           "set device: auto or cpu in config.yaml")
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool((check and check()) or (amx and amx()))


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' picks bf16 autocast where it measured faster: CUDA with bf16, CPUs with AVX512-BF16/AMX."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_supports_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.get_num_threads()} threads)"


def set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(int(threads))


def set_deterministic(on: bool) -> None:
    """PyTorch's deterministic algorithms and what they need on a GPU (cuBLAS's fixed workspace, cuDNN without
    autotuning), or the defaults. An operation with no deterministic implementation then raises, naming itself.
    On a CPU the results are unchanged (its kernels are deterministic for a fixed thread count)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call
    torch.use_deterministic_algorithms(bool(on))
    torch.backends.cudnn.deterministic = bool(on)
    torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def cuda_speed_flags(device: torch.device):
    """While training on CUDA with deterministic algorithms off (`set_deterministic(False)`): cuDNN autotuning
    (`cudnn.benchmark`, which picks the fastest convolution per input shape, not always the same) and TF32
    for float32 matmuls and convolutions (10-bit mantissa products, fp32 sums; Ampere and later). Yields the
    flags in force, for the run's record; restores the previous ones on exit, so that evaluation in the same
    process computes in full fp32. Elsewhere (a CPU, or deterministic on) nothing changes: these flags reach
    no CPU kernel (the legacy `allow_tf32` switches, unlike `set_float32_matmul_precision`, leave oneDNN alone)."""
    on = device.type == "cuda" and not torch.are_deterministic_algorithms_enabled()
    saved = (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if on:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield {"cudnn_benchmark": torch.backends.cudnn.benchmark,
               "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
               "tf32_conv": torch.backends.cudnn.allow_tf32} if device.type == "cuda" else {}
    finally:
        if on:
            (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32) = saved


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class Stopwatch:
    """Wall-clock seconds, synchronising CUDA so that timings mean what they say."""

    def __init__(self, device: torch.device | None = None):
        self.device = device

    def __enter__(self):
        self._sync()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.seconds = time.perf_counter() - self.start

    def _sync(self):
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
