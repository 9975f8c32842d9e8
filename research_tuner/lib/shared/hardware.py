"""How to train on the machine at hand: precision, attention and loss kernels, optimizer, threads (plain Python).

`plan_hardware` is a pure function of what the machine offers, so the choices for a GPU can be unit-tested
on a machine without one; `detect_hardware` feeds it what this machine really has.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import torch

from research_tuner.lib.shared.errors import SettingsError


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
    #: How the LM head and the loss run: "trl" (TRL's fused head, which skips unlabelled positions only on a
    #: GPU), "chunked" (the project's loss over labelled positions, lib/training/completion_loss.py) or "liger"
    #: (Liger's fused linear cross-entropy over the labelled positions).
    loss_kernel: str = "trl"

    @property
    def completion_loss(self) -> bool:
        """Whether the project's completion loss path (chunked or Liger) replaces TRL's fused head."""
        return self.loss_kernel != "trl"


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


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def plan_hardware(
    precision: str,
    *,
    cuda_capability: tuple[int, int] | None,
    cpu_bf16: bool,
    flash_attn: bool,
    cores: int,
    attention: str = "auto",
    loss_kernel: str = "auto",
    liger: bool = False,
) -> HardwarePlan:
    """The training configuration for a machine with a CUDA device of `cuda_capability` (None: CPU only).
    `attention` and `loss_kernel` are the settings of those names; a choice this machine cannot run is a
    SettingsError that says what would."""
    if loss_kernel == "liger" and (cuda_capability is None or not liger):
        raise SettingsError(
            "training.loss_kernel=liger needs a CUDA GPU and the liger-kernel package "
            f"({'no CUDA device here' if cuda_capability is None else 'liger-kernel is not installed'}): "
            "pip install liger-kernel, or set loss_kernel to auto"
        )
    if cuda_capability is not None:
        ampere = cuda_capability >= (8, 0)
        if precision == "auto":
            precision = "bf16" if ampere else "fp32"
        half = precision in ("bf16", "fp16")  # FlashAttention needs half-precision weights
        if attention == "flash_attention_2" and not (flash_attn and ampere and half):
            raise SettingsError(
                "training.attention=flash_attention_2 needs the flash-attn package, an Ampere-or-newer GPU and "
                f"half precision (here: flash-attn {'installed' if flash_attn else 'missing'}, compute capability "
                f"{cuda_capability[0]}.{cuda_capability[1]}, precision {precision}): set attention to auto or sdpa"
            )
        auto_attention = "flash_attention_2" if flash_attn and ampere and half else "sdpa"
        return HardwarePlan(
            device="cuda",
            precision=precision,
            tf32=ampere,
            optim="adamw_torch_fused",
            attn_implementation=auto_attention if attention == "auto" else attention,
            threads=None,
            pin_memory=True,
            dataloader_workers=2,
            loss_kernel="trl" if loss_kernel == "auto" else loss_kernel,
        )
    if attention in ("flex_attention", "flash_attention_2"):
        raise SettingsError(
            f"training.attention={attention} cannot train on a CPU (FlexAttention has no CPU backward, "
            "FlashAttention needs CUDA): set attention to auto or sdpa"
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
        attn_implementation="sdpa" if attention == "auto" else attention,
        threads=cores,
        pin_memory=False,
        dataloader_workers=0,  # tokenized tensors are ready; workers would compete for the 2 cores
        loss_kernel="chunked" if loss_kernel == "auto" else loss_kernel,
    )


def detect_hardware(precision: str = "auto", *, attention: str = "auto", loss_kernel: str = "auto") -> HardwarePlan:
    capability = torch.cuda.get_device_capability() if torch.cuda.is_available() else None
    return plan_hardware(
        precision,
        cuda_capability=capability,
        cpu_bf16=cpu_supports_bf16(),
        flash_attn=flash_attention_installed(),
        cores=physical_cores(),
        attention=attention,
        loss_kernel=loss_kernel,
        liger=liger_installed(),
    )


def apply_process_settings(plan: HardwarePlan) -> None:
    """Process-wide settings of the plan: threads on a CPU, TF32 on a GPU. An explicit OMP_NUM_THREADS wins:
    research_tuner.executors shares the cores among torch steps that run side by side."""
    if plan.threads is not None and not os.environ.get("OMP_NUM_THREADS") and torch.get_num_threads() != plan.threads:
        torch.set_num_threads(plan.threads)
    if plan.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
