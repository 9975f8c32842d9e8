"""Cheaper LoRA internals for training, with the same maths: a faster dropout on a CPU, and no float32 round
trips under autocast.

On a CPU, `nn.Dropout` on the input of each of the 210 LoRA layers of SmolLM2-135M is a visible share of a
training step: torch's CPU `bernoulli_` uses MKL's fast generator only on Intel CPUs, and a mask from
`torch.rand` still draws one float per element from a Mersenne Twister. `CpuDropout` draws 16-bit integers from
NumPy's SFC64 generator instead. benchmarks/bench_step_profile.py measures each generator's share of a step and
the time of one mask. And PEFT casts every LoRA layer's input to the float32 of the LoRA weights, which
bfloat16 autocast then casts straight back for the matmul.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

_LEVELS = 1 << 16  # a 16-bit draw per element


class CpuDropout(nn.Module):
    """Inverted dropout as `nn.Dropout(p)`: each element is dropped with probability p and the others are scaled
    by 1 / (1 - p). p is rounded to a multiple of 1/65,536 (0.05 becomes 0.0500031) and the scale uses the
    rounded value, so the output stays unbiased.

    Each call seeds its generator with one draw from torch's generator, so the masks follow `torch.manual_seed`
    and the Trainer's checkpointed RNG state: a resumed run draws the masks an uninterrupted run would have.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self._threshold = round(p * _LEVELS)
        self._scale = 1.0 / (1.0 - self._threshold / _LEVELS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self._threshold == 0:
            return x
        seed = int(torch.randint(0, 2**62, (1,)))
        bits = np.random.Generator(np.random.SFC64(seed)).integers(0, _LEVELS, size=x.numel(), dtype=np.uint16)
        drop = torch.from_numpy(bits < self._threshold).view(x.shape).to(x.device)
        return x.masked_fill(drop, 0).mul_(self._scale)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def swap_lora_dropout(model) -> int:
    """Replace the LoRA layers' `nn.Dropout` by `CpuDropout` (for a CPU; CUDA's fused dropout is fast).
    Returns how many were replaced."""
    from peft.tuners.lora import LoraLayer

    swapped = 0
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for name, dropout in list(module.lora_dropout.items()):
                if isinstance(dropout, nn.Dropout) and dropout.p > 0:
                    module.lora_dropout[name] = CpuDropout(dropout.p)
                    swapped += 1
    return swapped


def set_lora_input_cast(model, enabled: bool) -> None:
    """PEFT casts each LoRA layer's input to the LoRA weights' dtype. Under autocast the matmul dtype is
    autocast's anyway, so the cast is a wasted copy; without autocast it is needed (bfloat16 input, float32
    weights), so switch it off only while an autocast training loop runs."""
    from peft.tuners.lora import LoraLayer

    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.cast_input_dtype_enabled = enabled


def no_input_cast_while_training():
    """A `TrainerCallback` that switches the cast off when training starts (the Trainer has wrapped the
    model's forward in autocast by then) and on again when it ends."""
    from transformers import TrainerCallback

    class _NoInputCast(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            set_lora_input_cast(model, False)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            set_lora_input_cast(model, True)

    return _NoInputCast()
