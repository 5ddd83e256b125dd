"""Activation memory: the bytes autograd keeps for the backward pass, the memory PC-DARTS saves.

A device's peak memory mixes these activations with the weights, the optimisers' state, the allocator's
cache and, on a CPU, the whole Python process. The bytes of the tensors autograd saves in one forward
pass, counted with :func:`torch.autograd.graph.saved_tensors_hooks`, depend only on the network and the
batch's shape (and the precision), so they mean the same on every device: this is the figure that falls
with K, as the paper's memory argument says.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def saved_activation_bytes(
    model: nn.Module, x: torch.Tensor, forward: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> int:
    """Bytes of the distinct storages autograd saves in one forward pass (``forward(x)``, default
    ``model(x)``), the model's parameters and buffers excluded. Under autocast this includes the
    bfloat16 copies of the weights that the pass casts and saves. A storage saved twice counts once."""
    excluded = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in excluded:
            seen[(str(t.device), ptr)] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = (forward or model)(x)  # kept alive until counted, so no saved storage can be freed and reused
        total = sum(seen.values())
    del out
    return total


def activation_bytes_per_image(
    model: nn.Module,
    input_shape: tuple[int, int, int, int],
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """Saved-activation bytes per image of one training forward pass of a batch of ``input_shape``
    (``N×C×H×W``, zeros on the model's device), divided by ``N``.

    The pass runs in the model's current mode; its buffers (batch norm's running statistics) are put
    back afterwards and any random numbers it draws (random channel selection) come from a forked
    generator, so measuring leaves a search or a training exactly where it was."""
    parameter = next(model.parameters())
    x = torch.zeros(input_shape, device=parameter.device)
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    devices = [parameter.device] if parameter.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            total = saved_activation_bytes(model, x, forward)
    finally:
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
    return total / input_shape[0]
