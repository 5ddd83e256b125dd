"""How far a search's α and β can move: its architecture steps times ``arch_lr``, against the paper's.

Adam moves each architecture weight by at most about ``arch_lr`` per step (less when the gradient
changes sign), so ``architecture_steps × arch_lr`` bounds how far α can get from its uniform start.
The paper's CIFAR-10 search makes 35 unfrozen epochs of 98 steps (25,000 images in batches of 256)
at 6e-4: 3,430 steps, a bound of about 2.1. A short search at the paper's ``arch_lr`` (a quick test,
a laptop study) can have a bound of 0.02, and then α ends where it started: the "found" genotype is
the initialisation's noise. :func:`budget_warning` says so in one line; :class:`Search` warns with
it, and the orchestrator prints it before a study starts. This module does not import torch.
"""

from __future__ import annotations

import math

from .config import SearchConfig

#: The paper's CIFAR-10 search: (50 epochs - 15 frozen) x ceil(25,000 / 256) steps, at arch_lr 6e-4.
PAPER_ARCH_STEPS = (50 - 15) * math.ceil(25_000 / 256)
PAPER_ARCH_LR = 6e-4
PAPER_ARCH_MOVEMENT = PAPER_ARCH_STEPS * PAPER_ARCH_LR

#: Warn below this share of the paper's steps x arch_lr.
TOO_LITTLE = 0.1


class ArchitectureBudgetWarning(UserWarning):
    """A search's architecture steps x ``arch_lr`` is far below the paper's: α can hardly move."""


def weight_images(config: SearchConfig, train_images: int) -> int:
    """Images in the half of the training set that trains the weights (as
    :func:`~pcdarts_core.runner.split_training_set` splits it; with ``data_split="folders"``,
    ``train_images`` is the train/ folder, all of it or ``train_subset``'s share of it): one architecture
    step per batch of them."""
    if config.data_split == "folders":
        share = train_images if config.train_subset is None else round(config.train_subset * config.train_portion)
        return min(share, train_images)
    if config.train_subset is not None and config.train_subset < train_images:
        return round(config.train_subset * config.train_portion)
    return round(train_images * config.train_portion)


def architecture_steps(config: SearchConfig, train_images: int) -> int:
    """The architecture steps a search of ``config`` makes on a training set of ``train_images``."""
    steps_per_epoch = math.ceil(weight_images(config, train_images) / config.batch_size)
    return (config.epochs - config.warmup_epochs) * steps_per_epoch


def budget_warning(config: SearchConfig, train_images: int) -> str | None:
    """One line saying that α cannot move far in this search, or ``None`` when it can."""
    steps = architecture_steps(config, train_images)
    movement = steps * config.arch_lr
    if movement >= TOO_LITTLE * PAPER_ARCH_MOVEMENT:
        return None
    return (
        f"{steps:,} architecture steps x arch_lr {config.arch_lr:g} = {movement:.2g}, against "
        f"{PAPER_ARCH_STEPS:,} x {PAPER_ARCH_LR:g} = {PAPER_ARCH_MOVEMENT:.1f} in the paper's search: α will barely "
        "move from uniform and the genotype will be noise; raise arch_lr (or epochs) so that the product "
        f"is at least {TOO_LITTLE * PAPER_ARCH_MOVEMENT:.1f} (docs/core.md, 'Short searches')"
    )
