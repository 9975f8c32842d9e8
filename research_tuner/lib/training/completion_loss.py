"""The training loss over completion tokens only, with the LM head run only where a label is.

TRL's fused LM head scores only the labelled positions on a GPU (Triton); on a CPU it scores every position,
prompt and padding included, and accumulates the backward GEMMs in float32, which the bfloat16 matmul units of
a CPU do not speed up. With SmolLM2-135M's 49,152-entry vocabulary that is a large share of a step;
benchmarks/bench_step_profile.py times a 4 x ~473-token step with TRL's head and with this one.

`completion_nll` gathers the hidden states at labelled positions, and a custom autograd function computes the
summed negative log-likelihood and its gradient with respect to those hidden states in one pass, in chunks of
`CHUNK_TOKENS` positions, so the (positions x vocabulary) logits never exist all at once and are never kept for
the backward. The maths is the same as TRL's: the loss is the sum over labelled tokens of -log p(label),
divided by the number of labelled tokens in the whole accumulated batch; the matmuls run in the autocast dtype
and the softmax in float32.

With `kernel="liger"` the same gathered positions go through Liger's fused linear cross-entropy (Triton, CUDA
only), which also never holds the logits; it reports token accuracy but no entropy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

#: Positions per chunk: 1024 x 49,152 float32 logits are 200 MB.
CHUNK_TOKENS = 1024
IGNORE_INDEX = -100


@dataclass(frozen=True)
class CompletionLoss:
    loss: torch.Tensor
    #: Labelled positions in this batch, their summed entropy and how many were predicted exactly (argmax):
    #: for the `entropy` and `mean_token_accuracy` metrics TRL logs.
    n_tokens: int
    entropy_sum: float
    n_correct: int


class _LinearCrossEntropy(torch.autograd.Function):
    """Sum over rows of -log softmax(hidden @ weight.T)[target], with d(loss)/d(hidden) computed in the forward.

    `weight` gets no gradient (a frozen LM head, as in LoRA training; `completion_nll` checks). `stats`
    (a dict) receives the entropy sum and the count of exact predictions."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype, stats, need_grad):
        grad_hidden = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if need_grad else None
        w = weight.to(compute_dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], CHUNK_TOKENS):
            h = hidden[start : start + CHUNK_TOKENS].to(compute_dtype)
            t = targets[start : start + CHUNK_TOKENS]
            log_probs = torch.mm(h, w.t()).float().log_softmax(dim=-1)
            total += F.nll_loss(log_probs, t, reduction="sum")
            probs = log_probs.exp()
            stats["entropy_sum"] -= float(torch.dot(probs.view(-1), log_probs.view(-1)))  # no n x V temporary
            stats["n_correct"] += int((log_probs.argmax(dim=-1) == t).sum())
            if need_grad:
                del log_probs
                probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d(-log p_t)/d(logits) = p - one_hot(t)
                grad_hidden[start : start + CHUNK_TOKENS] = torch.mm(probs.to(compute_dtype), w).float()
        ctx.save_for_backward(grad_hidden)
        ctx.hidden_dtype = hidden.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output):
        (grad_hidden,) = ctx.saved_tensors
        return (grad_hidden * grad_output).to(ctx.hidden_dtype), None, None, None, None, None


def can_use(causal_lm) -> bool:
    """Whether `completion_nll` applies: a decoder under `base_model_prefix` and a bias-free, frozen LM head
    without logit scaling or soft-capping (Llama, SmolLM2, Qwen, Mistral ...)."""
    head = causal_lm.get_output_embeddings()
    config = causal_lm.config.get_text_config()
    return (
        isinstance(head, torch.nn.Linear)
        and head.bias is None
        and not head.weight.requires_grad
        and hasattr(causal_lm, causal_lm.base_model_prefix)
        and getattr(config, "final_logit_softcapping", None) is None
        and getattr(config, "logit_scale", None) in (None, 1.0)
        and getattr(config, "logits_scaling", None) in (None, 1.0)
    )


def completion_nll(causal_lm, inputs: dict, num_items_in_batch=None, kernel: str = "chunked") -> CompletionLoss:
    """The next-token loss over positions whose label is not -100, divided by `num_items_in_batch` (the
    labelled tokens of the whole accumulated batch, as the Trainer passes it) or else by this batch's count.

    `causal_lm` is the (LoRA-injected) causal LM itself, not a DDP wrapper: the decoder is called directly.
    `inputs` is a padded batch (with an attention mask) or a padding-free row (with restarting position ids).
    `kernel` is "chunked" (this module's) or "liger".
    """
    backbone = getattr(causal_lm, causal_lm.base_model_prefix)
    labels = inputs["labels"]
    forward_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "num_items_in_batch")}
    forward_inputs["use_cache"] = False
    hidden = backbone(**forward_inputs).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    selected = hidden[mask]
    weight = causal_lm.get_output_embeddings().weight
    device_type = selected.device.type
    autocast = torch.is_autocast_enabled(device_type)
    compute_dtype = torch.get_autocast_dtype(device_type) if autocast else weight.dtype
    stats = {"entropy_sum": 0.0, "n_correct": 0}
    need_grad = selected.requires_grad and torch.is_grad_enabled()  # grad mode is off inside forward()
    with torch.autocast(device_type, enabled=False):
        if kernel == "liger":
            total = _liger_sum(selected, weight, targets[mask], compute_dtype, stats)
        else:
            total = _LinearCrossEntropy.apply(selected, weight, targets[mask], compute_dtype, stats, need_grad)
    n_tokens = int(mask.sum())
    divisor = num_items_in_batch if num_items_in_batch is not None else max(n_tokens, 1)
    return CompletionLoss(
        loss=total / torch.as_tensor(divisor, dtype=torch.float32).clamp(min=1),
        n_tokens=n_tokens,
        entropy_sum=stats["entropy_sum"],
        n_correct=stats["n_correct"],
    )


def _liger_sum(hidden, weight, targets, compute_dtype, stats) -> torch.Tensor:
    """Summed -log p(target) by Liger's fused linear cross-entropy; `stats` gets the exact predictions (Liger
    computes no entropy, so `entropy_sum` stays NaN)."""
    from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

    if hidden.shape[0] == 0:
        stats["entropy_sum"] = float("nan")
        return hidden.sum() * 0.0  # connected to the graph, as the chunked kernel's empty sum is
    loss_fn = LigerFusedLinearCrossEntropyLoss(reduction="sum", return_token_accuracy=True)
    out = loss_fn(weight.to(compute_dtype), hidden.to(compute_dtype), targets)
    stats["n_correct"] += int(round(float(out.token_accuracy) * targets.numel()))
    stats["entropy_sum"] = float("nan")
    return out.loss.float()
