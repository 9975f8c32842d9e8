"""`training.compile`: torch.compile each decoder layer of the model being trained (regional compilation).

Compiling the whole model would not reach the layers here: the project's loss calls the decoder directly
(completion_loss.py), past any compiled wrapper of the model's forward, and a whole-model graph would break at
the mask building and the loss anyway. The decoder layers are where the time goes and they are all alike, so
each is compiled in place (`nn.Module.compile`): with torch's inlining of module parameters (the default since
torch 2.5) the layers share one compiled graph, and the first steps pay for one layer's compilation. Sequence
lengths change from batch to batch; torch marks them dynamic after the first change, so it recompiles once.
"""

from __future__ import annotations

from torch import nn


def decoder_layers(model) -> nn.ModuleList:
    """The model's stack of decoder layers (the `layers` list of a Llama-like backbone), through a PEFT wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone = getattr(base, base.base_model_prefix, base)
    layers = getattr(backbone, "layers", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        raise ValueError(f"training.compile: no decoder layers found in {type(base).__name__} (expected a `layers` "
                         "list on the backbone, as Llama, Qwen and Mistral have): set training.compile to false")
    return layers


def compile_decoder_layers(model) -> int:
    """Compile each decoder layer in place; returns how many were compiled."""
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile()
    return len(layers)
