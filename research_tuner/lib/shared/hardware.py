"""How to train on the machine at hand: precision, attention kernel, optimizer, threads (plain Python).

`plan_hardware` is a pure function of what the machine offers, so the choices for a GPU can be unit-tested
on a machine without one; `detect_hardware` feeds it what this machine really has.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HardwarePlan:
    device: str  # "cuda" or "cpu"
    #: The training precision that `precision: auto` resolved to (fp32, bf16, bf16-mixed or fp16).
    precision: str
    #: TensorFloat-32 matmuls for the float32 parts (Ampere and newer).
    tf32: bool
    optim: str
    attn_implementation: str
    #: Intra-op threads for a CPU run (the physical cores), None on a GPU.
    threads: int | None
    pin_memory: bool
    dataloader_workers: int
    #: The project's loss over labelled positions only (lib/completion_loss.py) instead of TRL's fused LM head,
    #: which on a CPU scores every position; on a GPU TRL's kernel already skips the unlabelled ones.
    completion_loss: bool = False


def cpu_supports_bf16() -> bool:
    """Native bfloat16 matmuls on this CPU (AVX512-BF16 or AMX), which oneDNN uses; without them bfloat16 is
    emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def physical_cores() -> int:
    """Physical cores this process may use; hyperthread siblings add nothing to matmul throughput."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in allowed:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_id") as f_core, open(
                f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"
            ) as f_pkg:
                cores.add((f_pkg.read().strip(), f_core.read().strip()))
        except OSError:
            cores.add(("?", str(cpu)))
    return max(1, len(cores))


def flash_attention_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def plan_hardware(
    precision: str,
    *,
    cuda_capability: tuple[int, int] | None,
    cpu_bf16: bool,
    flash_attn: bool,
    cores: int,
) -> HardwarePlan:
    """The training configuration for a machine with a CUDA device of `cuda_capability` (None: CPU only)."""
    if cuda_capability is not None:
        ampere = cuda_capability >= (8, 0)
        if precision == "auto":
            precision = "bf16" if ampere else "fp32"
        half = precision in ("bf16", "fp16")  # FlashAttention needs half-precision weights
        return HardwarePlan(
            device="cuda",
            precision=precision,
            tf32=ampere,
            optim="adamw_torch_fused",
            attn_implementation="flash_attention_2" if flash_attn and ampere and half else "sdpa",
            threads=None,
            pin_memory=True,
            dataloader_workers=2,
        )
    if precision == "auto":
        # bf16 weights for the frozen base (no per-step casts from float32), bf16 matmuls; PEFT keeps the
        # LoRA weights and their optimizer state in float32.
        precision = "bf16" if cpu_bf16 else "fp32"
    return HardwarePlan(
        device="cpu",
        precision=precision,
        tf32=False,
        optim="adamw_torch_fused",  # fused CPU kernel in torch >= 2.4
        attn_implementation="sdpa",
        threads=cores,
        pin_memory=False,
        dataloader_workers=0,  # tokenized tensors are ready; workers would compete for the 2 cores
        completion_loss=True,
    )


def detect_hardware(precision: str = "auto") -> HardwarePlan:
    capability = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
    return plan_hardware(
        precision,
        cuda_capability=capability,
        cpu_bf16=cpu_supports_bf16(),
        flash_attn=flash_attention_installed(),
        cores=physical_cores(),
    )


def apply_process_settings(plan: HardwarePlan) -> None:
    """Process-wide settings of the plan: threads on a CPU, TF32 on a GPU. An explicit OMP_NUM_THREADS wins:
    research_tuner.executors shares the cores among torch steps that run side by side."""
    if plan.threads is not None and not os.environ.get("OMP_NUM_THREADS") and torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    if plan.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
