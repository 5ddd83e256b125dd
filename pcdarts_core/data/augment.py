"""Batched data augmentation on the batch's own device.

Every function takes a whole batch N×C×H×W and draws a separate set of random
parameters for each sample, all from the ``torch.Generator`` it is given, so
that a run is reproducible from the generator's seed. We do this ourselves
because torchvision's v2 transforms draw one set of parameters per call: on a
batch tensor every sample would get the same crop offset, flip and hole.

Random numbers are drawn on the generator's device and moved to the batch's
device, so a CPU generator also works with a CUDA batch (and vice versa).

Two crops: :func:`random_crop` (the CIFAR augmentation: 4-pixel zero padding, a random
offset) and :func:`random_resized_crop` (the ImageNet one: a random part of the image,
resized back to the image's size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["cutout", "normalize", "random_crop", "random_hflip", "random_resized_crop"]


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


def random_resized_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> torch.Tensor:
    """Per sample, a random crop resized back to H×W (bilinear), chosen as torchvision's
    ``RandomResizedCrop`` chooses it: an area of ``scale`` times the image's and an aspect ratio
    log-uniform in ``ratio``, the first of ``attempts`` draws that fits in the image, at a uniform
    offset; when none fits, the centre crop with the image's aspect ratio clamped into ``ratio``.

    The resizing samples as ``F.interpolate(crop, mode="bilinear", align_corners=False)``, for all
    samples at once (:func:`_resize_crops`). A crop is never larger than the image, so it is only
    enlarged and needs no antialiasing. The result has the input's dtype (uint8 rounded).
    """
    _check_batch(x)
    if not (0 < scale[0] <= scale[1]) or not (0 < ratio[0] <= ratio[1]) or attempts < 1:
        raise ValueError(f"random_resized_crop: bad scale {scale}, ratio {ratio} or attempts {attempts}")
    n, _, h, w = x.shape
    u = torch.rand((n, attempts, 4), generator=generator, device=generator.device, dtype=torch.float64).to(x.device)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    crop_w = torch.round(torch.sqrt(area * aspect))
    crop_h = torch.round(torch.sqrt(area / aspect))
    fits = (crop_w > 0) & (crop_w <= w) & (crop_h > 0) & (crop_h <= h)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first draw that fits (0 when none does)

    def chosen(t: torch.Tensor) -> torch.Tensor:
        return t.gather(1, first).squeeze(1)

    crop_w, crop_h = chosen(crop_w), chosen(crop_h)
    top = torch.floor(chosen(u[..., 2]) * (h - crop_h + 1))
    left = torch.floor(chosen(u[..., 3]) * (w - crop_w + 1))
    # No draw fits: the whole image, cut to the nearest aspect ratio in ``ratio``, centred.
    fallback_w, fallback_h = w, h
    if w / h < ratio[0]:
        fallback_h = round(w / ratio[0])
    elif w / h > ratio[1]:
        fallback_w = round(h * ratio[1])
    none_fits = ~fits.any(dim=1)
    crop_w = torch.where(none_fits, float(fallback_w), crop_w).long()
    crop_h = torch.where(none_fits, float(fallback_h), crop_h).long()
    top = torch.where(none_fits, float((h - fallback_h) // 2), top).long()
    left = torch.where(none_fits, float((w - fallback_w) // 2), left).long()
    out = _resize_crops(x.float(), top, left, crop_h, crop_w)
    if x.dtype == torch.uint8:
        out = out.round_().clamp_(0, 255)
    return out.to(x.dtype)


def _source_pixels(start: torch.Tensor, size: torch.Tensor, out: int) -> tuple[torch.Tensor, ...]:
    """For output pixels ``0..out-1`` of crops ``[start, start + size)`` (one per sample): the two input
    pixels each reads and the weight of the second, as bilinear ``align_corners=False`` resizing samples."""
    scale = size.to(torch.float32)[:, None] / out
    centre = torch.arange(out, device=start.device, dtype=torch.float32)[None, :] + 0.5
    source = (centre * scale - 0.5).clamp_(min=0)  # N×out, in the crop's coordinates
    low = source.floor()
    weight = source - low
    low = low.long()
    high = torch.minimum(low + 1, size[:, None] - 1)
    return start[:, None] + low, start[:, None] + high, weight


def _resize_crops(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, crop_h: torch.Tensor, crop_w: torch.Tensor
) -> torch.Tensor:
    """Each sample's crop ``[top, top + crop_h) × [left, left + crop_w)`` resized bilinearly to the batch's
    H×W, rows then columns (bilinear resizing is separable)."""
    n, c, h, w = x.shape
    batch = torch.arange(n, device=x.device)[:, None]
    row0, row1, wy = _source_pixels(top, crop_h, h)
    col0, col1, wx = _source_pixels(left, crop_w, w)
    # x[batch, :, rows] puts the indexed dimensions first: N×H×C×W
    rows = torch.lerp(x[batch, :, row0], x[batch, :, row1], wy[:, :, None, None]).permute(0, 2, 1, 3)  # N×C×H×W
    # rows[batch, :, :, cols]: N×W×C×H
    out = torch.lerp(rows[batch, :, :, col0], rows[batch, :, :, col1], wx[:, :, None, None])
    return out.permute(0, 2, 3, 1).contiguous()


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
