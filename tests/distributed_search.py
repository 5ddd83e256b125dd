"""A search on the processes ``torchrun`` starts, for the tests of several processes: ``python -m
torch.distributed.run --nproc_per_node N tests/distributed_search.py CONFIG OUT EPOCHS [--resume]``.

Runs the search whose settings the JSON file ``CONFIG`` holds to ``EPOCHS`` epochs
through the library, as the command line would, saving ``OUT/checkpoint.pt`` after every epoch (with
``--resume``: continuing it), and has every process save what it held after every step (its α/β, then its
weights, flattened) to ``OUT/rank<r>.pt``, so the test can compare the processes step by step.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import torch

from pcdarts_core import SearchConfig
from pcdarts_core.distributed import Ranks
from pcdarts_core.search import Search


def main(settings: Path, out: Path, epochs: int, resume: bool) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # the architecture budget of a 2-epoch search
    ranks = Ranks.launched()
    try:
        if resume:
            search = Search.resume(out / "checkpoint.pt", ranks=ranks, epochs=epochs)
        else:
            search = Search(SearchConfig(**{**json.loads(settings.read_text()), "epochs": epochs}), ranks=ranks)
        held: list[torch.Tensor] = []

        def after_step(step: int, steps: int) -> None:
            arch = [p.detach().flatten() for p in search.model.arch_parameters()]
            weights = [p.detach().flatten() for p in search.model.weight_parameters()]
            held.append(torch.cat(arch + weights).clone())

        for _ in search.epochs(after_step):
            search.save(out / "checkpoint.pt")
        arch_numbers = sum(p.numel() for p in search.model.arch_parameters())
        torch.save({"steps": torch.stack(held), "arch_numbers": arch_numbers}, out / f"rank{ranks.rank}.pt")
    finally:
        ranks.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), "--resume" in sys.argv[4:])
