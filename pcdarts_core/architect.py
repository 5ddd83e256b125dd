"""The architecture step: one Adam update of α/β on a validation batch.

First order (the PC-DARTS default) takes the gradient of the validation loss
at the current weights. Second order (DARTS' unrolled step) takes it at the
weights after one virtual SGD step, ``w' = w - η (∇w L_train + momentum·buf + wd·w)``,
and subtracts ``η · ∇²_{α,w} L_train · ∇w' L_val``, the Hessian-vector product
estimated by central finite differences with ``ε = 0.01 / ‖∇w' L_val‖``.
The unrolled and perturbed weights are passed to the model with
``torch.func.functional_call``, so the live weights are never modified.

The first-order pass runs as the search is configured (``logits_of``: autocast, a compiled model).
The second order always runs its passes in float32 on the plain model: its finite-difference
passes move the weights by about 1e-5, far below bf16's resolution (about 4e-4 near 0.1), and
measured against float32 its bf16 gradient pointed elsewhere (cosine 0.4 to 0.9). α/β, their
gradients and Adam's state stay float32 whatever the precision. With ``arch_grad_clip`` the
α/β gradient's norm is clipped before the Adam update (the authors' ImageNet search clips at 5).

On several processes (``ranks``, :mod:`pcdarts_core.distributed`) every gradient taken from a
process's share of a batch is averaged over the processes before it is used: the first order's α/β
gradient; in the second order the virtual step's weight gradient, the validation gradients (so the
perturbation ε is the same everywhere) and the finite difference. All processes then take the same step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.func import functional_call

from .config import SearchConfig
from .distributed import SINGLE, Ranks
from .speed import full_precision
from .supernet import SearchNetwork

Logits = Callable[[torch.Tensor], torch.Tensor]


class Architect:
    """The α/β optimiser and its step. ``optimizer_options`` choose Adam's kernels; ``ranks`` the processes
    whose gradients are averaged."""

    def __init__(
        self,
        model: SearchNetwork,
        config: SearchConfig,
        *,
        optimizer_options: dict[str, Any] | None = None,
        ranks: Ranks = SINGLE,
    ) -> None:
        self.model = model
        self.ranks = ranks
        self.order = config.order
        self.momentum = config.momentum
        self.weight_decay = config.weight_decay
        self.grad_clip = config.arch_grad_clip
        self.optimizer = torch.optim.Adam(
            model.arch_parameters(),
            lr=config.arch_lr,
            betas=(config.arch_beta1, config.arch_beta2),
            weight_decay=config.arch_weight_decay,
            **(optimizer_options or {}),
        )

    def step(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_valid: torch.Tensor,
        y_valid: torch.Tensor,
        lr: float,
        weight_optimizer: torch.optim.Optimizer,
        logits_of: Logits | None = None,
    ) -> None:
        """One Adam step of α/β; ``logits_of`` computes a batch's logits as the search is configured
        (default: the model itself)."""
        params = self.model.arch_parameters()
        if self.order == "first":
            logits = (logits_of or self.model)(x_valid)
            loss = F.cross_entropy(full_precision(logits), y_valid)
            # Only α/β gradients: the weight gradients of this pass would be thrown away.
            grads = torch.autograd.grad(loss, params)
            self.ranks.average(grads)
        else:
            grads = self._unrolled_grads(x_train, y_train, x_valid, y_valid, lr, weight_optimizer)
        for p, g in zip(params, grads):
            p.grad = g
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _unrolled_grads(
        self,
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_valid: torch.Tensor,
        y_valid: torch.Tensor,
        lr: float,
        weight_optimizer: torch.optim.Optimizer,
        fd_scale: float = 0.01,
    ) -> tuple[torch.Tensor, ...]:
        """∇α of the validation loss after one virtual weight step; ``fd_scale`` is DARTS' 0.01,
        the norm of the finite-difference perturbation of the weights."""
        model = self.model
        weight_names, weights = zip(*model.named_weight_parameters())
        arch = model.arch_parameters()
        arch_tensors = {name: getattr(model, name) for name in model.ARCH_NAMES}

        def loss_with(new_weights: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            # Private copies of the BN buffers: the virtual passes must not touch the running stats.
            buffers = {n: b.clone() for n, b in model.named_buffers()}
            tensors = {**dict(zip(weight_names, new_weights)), **arch_tensors, **buffers}
            return F.cross_entropy(functional_call(model, tensors, (x,)), y)

        # One virtual SGD step with momentum and weight decay.
        train_grads = torch.autograd.grad(F.cross_entropy(model(x_train), y_train), weights)
        self.ranks.average(train_grads)
        unrolled = []
        for w, g in zip(weights, train_grads):
            buf = weight_optimizer.state.get(w, {}).get("momentum_buffer")
            step = g + self.weight_decay * w
            if buf is not None:
                step = step + self.momentum * buf
            unrolled.append((w - lr * step).detach().requires_grad_(True))

        valid_loss = loss_with(unrolled, x_valid, y_valid)
        grads = torch.autograd.grad(valid_loss, arch + unrolled)
        self.ranks.average(grads)
        arch_grads, vector = grads[: len(arch)], grads[len(arch) :]

        eps = fd_scale / torch.cat([v.flatten() for v in vector]).norm()
        plus = [w.detach() + eps * v for w, v in zip(weights, vector)]
        minus = [w.detach() - eps * v for w, v in zip(weights, vector)]
        grads_plus = torch.autograd.grad(loss_with(plus, x_train, y_train), arch)
        grads_minus = torch.autograd.grad(loss_with(minus, x_train, y_train), arch)
        if not self.ranks.several:
            return tuple(g - lr * (gp - gm) / (2 * eps) for g, gp, gm in zip(arch_grads, grads_plus, grads_minus))
        differences = [gp - gm for gp, gm in zip(grads_plus, grads_minus)]
        self.ranks.average(differences)
        return tuple(g - lr * d / (2 * eps) for g, d in zip(arch_grads, differences))
