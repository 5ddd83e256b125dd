"""What a network costs: parameters and multiply-adds, counted the way NAS papers report them.

Conventions (those of the DARTS and PC-DARTS papers):

* **Parameters** are the trainable parameters of the network *without* the auxiliary head,
  which exists only during training.
* **Multiply-adds** are those of one forward pass of one image in eval mode (no auxiliary
  head, no drop path), counted by :class:`torch.utils.flop_counter.FlopCounterMode`.
  That counter covers convolutions and matrix products (the linear classifier) and counts
  each multiply-add as two FLOPs; we report FLOPs / 2. Batch norm, activations, pooling and
  the additions that join edges are not counted, as in the papers' figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class NetworkCost:
    parameters: int
    multiply_adds: int

    def to_dict(self) -> dict[str, int]:
        return {"parameters": self.parameters, "multiply_adds": self.multiply_adds}


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, without any auxiliary head (``auxiliary_head`` submodule)."""
    auxiliary = getattr(model, "auxiliary_head", None)
    skip = {id(p) for p in auxiliary.parameters()} if isinstance(auxiliary, nn.Module) else set()
    return sum(p.numel() for p in model.parameters() if p.requires_grad and id(p) not in skip)


def count_multiply_adds(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-adds of one forward pass of one ``C×H×W`` input in eval mode.

    The model is put in eval mode for the count and returned to its previous mode.
    """
    was_training = model.training
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x = torch.zeros((1, *input_shape), device=device)
    counter = FlopCounterMode(display=False)
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def network_cost(model: nn.Module, input_shape: tuple[int, int, int]) -> NetworkCost:
    """Parameters and multiply-adds of ``model`` for inputs of shape ``C×H×W``."""
    return NetworkCost(count_parameters(model), count_multiply_adds(model, input_shape))
