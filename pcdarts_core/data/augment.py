"""Batched data augmentation on the batch's own device.

Every function takes a whole batch N×C×H×W and draws a separate set of random
parameters for each sample, all from the ``torch.Generator`` it is given, so
that a run is reproducible from the generator's seed. We do this ourselves
because torchvision's v2 transforms draw one set of parameters per call: on a
batch tensor every sample would get the same crop offset, flip and hole.

Random numbers are drawn on the generator's device and moved to the batch's
device, so a CPU generator also works with a CUDA batch (and vice versa).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["cutout", "normalize", "random_crop", "random_hflip"]


def _check_batch(x: torch.Tensor) -> None:
    """Require an N×C×H×W tensor."""
    if x.dim() != 4:
        raise ValueError(f"expected a batch N×C×H×W, got shape {tuple(x.shape)}")


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """``n`` integers uniform in [0, high), drawn from ``generator``, returned on ``device``."""
    out = torch.randint(0, high, (n,), generator=generator, device=generator.device)
    return out.to(device)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` on each side, then crop back to H×W at a per-sample random offset."""
    _check_batch(x)
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    if padding == 0:
        return x.clone()
    n, c, h, w = x.shape
    padded = x.new_zeros((n, h + 2 * padding, w + 2 * padding, c))
    padded[:, padding : padding + h, padding : padding + w, :] = x.permute(0, 2, 3, 1)
    top = _randint(2 * padding + 1, n, generator, x.device)
    left = _randint(2 * padding + 1, n, generator, x.device)
    rows = top[:, None] + torch.arange(h, device=x.device)  # N×H
    cols = left[:, None] + torch.arange(w, device=x.device)  # N×W
    batch = torch.arange(n, device=x.device)[:, None, None]
    cropped = padded[batch, rows[:, :, None], cols[:, None, :]]  # N×H×W×C
    # Standard NCHW strides, also for one channel: there the permuted view already counts as
    # contiguous, and its channels-last strides sent a oneDNN weight-gradient kernel on an AVX2
    # CPU into a near-endless loop (seen on Fashion-MNIST with torch 2.14.1).
    return cropped.permute(0, 3, 1, 2).clone(memory_format=torch.contiguous_format)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each sample left-right with probability 0.5."""
    _check_batch(x)
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < 0.5
    flip = flip.to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(-1), x)


def _channel_tensor(values: Sequence[float] | torch.Tensor, x: torch.Tensor, what: str) -> torch.Tensor:
    """Per-channel constants as a 1×C×1×1 float32 tensor on ``x``'s device (no copy for such a tensor)."""
    t = torch.as_tensor(values, dtype=torch.float32, device=x.device).flatten()
    if t.numel() != x.shape[1]:
        raise ValueError(f"{what} has {t.numel()} values but the batch has {x.shape[1]} channels")
    return t.view(1, -1, 1, 1)


def normalize(
    x_uint8: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Scale to float32 in [0, 1] (uint8 input is divided by 255), then ``(x - mean) / std``.

    Floating-point input is taken to be in [0, 1] already.
    """
    _check_batch(x_uint8)
    x = x_uint8.to(torch.float32)
    if x_uint8.dtype == torch.uint8:
        x = x / 255.0
    return (x - _channel_tensor(mean, x, "mean")) / _channel_tensor(std, x, "std")


def cutout(x: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a ``length``×``length`` square per sample, clipped at the borders.

    As in DARTS' Cutout, the centre is uniform over all pixels, so holes near
    an edge are partly outside the image. Apply after normalisation.
    """
    _check_batch(x)
    if length < 0:
        raise ValueError(f"cutout length must be >= 0, got {length}")
    if length == 0:
        return x.clone()
    n, _, h, w = x.shape
    cy = _randint(h, n, generator, x.device)
    cx = _randint(w, n, generator, x.device)
    y0, x0 = cy - length // 2, cx - length // 2
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_rows = (ys >= y0[:, None]) & (ys < y0[:, None] + length)  # N×H
    in_cols = (xs >= x0[:, None]) & (xs < x0[:, None] + length)  # N×W
    hole = in_rows[:, :, None] & in_cols[:, None, :]  # N×H×W
    return x.masked_fill(hole[:, None], 0)
