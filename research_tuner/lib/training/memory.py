"""Whether training needs gradient checkpointing (`training.gradient_checkpointing: auto`): a memory estimate
built from what the model itself saves for the backward pass.

Checkpointing recomputes every layer's forward in the backward pass (about a third more compute), which a GPU
with room for the activations should not pay. The estimate is measured, not modelled from the architecture:
`saved_activation_bytes` runs one forward of the LoRA-wrapped model in training mode, under the training's
autocast, and counts with `torch.autograd.graph.saved_tensors_hooks` the bytes of every tensor autograd keeps
for the backward (each storage once, parameters left out). Two probe lengths give a line, a fixed part (such as
weight casts under autocast) plus bytes per token, which is extended to the largest micro-batch
(per_device_batch_size x max_length tokens). Weights, the trainable parameters' gradients and AdamW's two
float32 moments are added, and the sum must fit in `HEADROOM` of the GPU's memory (the rest is for the LM head's
loss chunks, the allocator's fragmentation and the CUDA context).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

#: Share of the GPU's memory the estimate may fill without checkpointing.
HEADROOM = 0.8
#: Probe lengths (tokens): long enough that the per-token part dominates, short enough to cost milliseconds.
PROBE_TOKENS = (128, 256)


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    optimizer_bytes: int
    activation_bytes_per_token: float
    activation_fixed_bytes: float
    tokens: int
    device_bytes: int

    @property
    def activation_bytes(self) -> float:
        return self.activation_fixed_bytes + self.activation_bytes_per_token * self.tokens

    @property
    def total_bytes(self) -> float:
        return self.weights_bytes + self.optimizer_bytes + self.activation_bytes

    @property
    def needs_checkpointing(self) -> bool:
        return self.total_bytes > HEADROOM * self.device_bytes

    def summary(self) -> dict:
        gib = 2**30
        return {
            "estimate_gib": round(self.total_bytes / gib, 2),
            "activations_gib": round(self.activation_bytes / gib, 2),
            "activation_mib_per_token": round(self.activation_bytes_per_token / 2**20, 3),
            "device_gib": round(self.device_bytes / gib, 2),
            "tokens_per_micro_batch": self.tokens,
            "gradient_checkpointing": self.needs_checkpointing,
        }


def saved_activation_bytes(model, tokens: int, autocast_dtype: torch.dtype | None = None) -> int:
    """Bytes autograd saves for the backward pass in one training-mode forward of `tokens` tokens (one row),
    parameters excluded and each storage counted once. The model is left in the mode it was in."""
    device = next(model.parameters()).device
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters and storage.device.type != "meta":
            seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
        return tensor

    vocab = model.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (1, tokens), device=device)
    was_training = model.training
    model.train()
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else contextlib.nullcontext())
    try:
        with autocast, torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            backbone = getattr(model.get_base_model(), model.get_base_model().base_model_prefix)
            out = backbone(input_ids=ids, use_cache=False).last_hidden_state
            del out
    finally:
        model.train(was_training)
    return sum(seen.values())


def estimate_memory(model, *, tokens: int, device_bytes: int, autocast_dtype: torch.dtype | None = None,
                    probe_tokens: tuple[int, int] = PROBE_TOKENS) -> MemoryEstimate:
    """The memory training `model` (LoRA-wrapped) without checkpointing needs for micro-batches of `tokens`."""
    short, long = probe_tokens
    small = saved_activation_bytes(model, short, autocast_dtype)
    large = saved_activation_bytes(model, long, autocast_dtype)
    per_token = max(0.0, (large - small) / (long - short))
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = sum(p.numel() * (p.element_size() + 8) for p in trainable)  # gradient + two float32 moments
    return MemoryEstimate(
        weights_bytes=weights,
        optimizer_bytes=optimizer,
        activation_bytes_per_token=per_token,
        activation_fixed_bytes=max(0.0, small - per_token * short),
        tokens=tokens,
        device_bytes=device_bytes,
    )
