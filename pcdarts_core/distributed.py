"""One search on several processes: the ranks of a ``torch.distributed`` process group and what they share.

Data parallel as the authors ran their ImageNet search (``nn.DataParallel`` on 8 GPUs), in one process
per device: every process holds the whole supernet and takes an equal share of every batch of both
halves of the training set (:class:`~pcdarts_core.data.Batches` with ``shard``), and after every
backward pass the gradients, of the weights and of α/β alike, are averaged over the processes
(:meth:`Ranks.average`). Each process then steps the same optimisers on the same numbers, so all hold
the same weights and α/β; :meth:`Ranks.check_same` verifies it every epoch. The average of the
processes' mean gradients is the mean gradient of the whole batch, which is what ``DataParallel``
computes; BatchNorm normalises each process's share with its own statistics, as ``DataParallel``'s
replicas do, unless ``sync_bn`` (GPUs only) synchronises them.

The gradients are averaged explicitly rather than by wrapping the model in
``DistributedDataParallel``: the architecture step takes its gradients with ``torch.autograd.grad``
(and the second-order step at weights passed by ``functional_call``), which ``DistributedDataParallel``'s
hooks do not see. The cost is one all-reduce of the flattened gradients per backward pass (about 1M
numbers for the ImageNet supernet).

A single process is :data:`SINGLE`: every method is then a no-op, so a one-process search computes
exactly what it computed before this module existed. :meth:`Ranks.launched` joins the process group
that ``torchrun`` describes in the environment (NCCL on GPUs, gloo on CPUs); :meth:`Ranks.current` reads
one that is already set up (Ray Train's workers).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import UserInputError

__all__ = ["SINGLE", "Ranks"]


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes of one search: ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes outputs and checkpoints, and prints."""
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.world_size > 1

    @classmethod
    def current(cls) -> Ranks:
        """The default process group's ranks when one is set up (by ``torchrun`` through :meth:`launched`, or by
        Ray Train), else :data:`SINGLE`."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return SINGLE

    @classmethod
    def launched(cls, device: str = "auto") -> Ranks:
        """Join the process group a launcher describes (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
        ``MASTER_ADDR``/``PORT``: what ``torchrun`` sets), once; :data:`SINGLE` when the environment names no
        group of several processes. Unless ``device`` is ``cpu``, where CUDA is present each process takes the
        GPU of its ``LOCAL_RANK``; the group talks NCCL for tensors on GPUs and gloo for tensors on the CPU
        (a resumed search may keep ``device="cpu"`` from its checkpoint); without CUDA, gloo."""
        if dist.is_available() and dist.is_initialized():
            return cls.current()
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return SINGLE
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            if device != "cpu":
                if local >= torch.cuda.device_count():
                    raise UserInputError(
                        f"process {local} of this machine has no GPU of its own ({torch.cuda.device_count()} here): "
                        "start at most as many processes per machine as it has GPUs, or pass --device cpu"
                    )
                torch.cuda.set_device(local)
            dist.init_process_group(backend="cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group(backend="gloo")
        return cls.current()

    def close(self) -> None:
        """Leave the process group (after the last collective call); nothing for one process."""
        if self.several and dist.is_initialized():
            dist.destroy_process_group()

    def average(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each tensor (gradients of equal shares of a batch) by its mean over the processes, in one
        all-reduce of them flattened. Every process must call it, with tensors of the same shapes."""
        if not self.several or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over the processes (a new tensor; the same tensor for one process)."""
        if not self.several:
            return values
        total = values.clone()
        dist.all_reduce(total)
        return total

    def broadcast(self, tensors: Iterable[torch.Tensor]) -> None:
        """Overwrite each tensor with the main process's (BatchNorm's running statistics before an evaluation)."""
        if not self.several:
            return
        for t in tensors:
            dist.broadcast(t.detach(), src=0)

    def check_same(self, named: Iterable[tuple[str, torch.Tensor]], what: str) -> None:
        """Raise when any tensor differs, in any bit, between the processes (they all must hold the same
        weights and α/β after every step: a difference is a bug, never rounding). Compares the bit patterns,
        so a NaN matches itself and -0.0 does not match 0.0."""
        if not self.several:
            return
        named = list(named)
        flat = torch.cat([_bits(t) for _, t in named])
        high, low = flat.clone(), flat.clone()
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        if not torch.equal(high, low):
            differ, offset = [], 0
            for name, t in named:
                n = t.numel()
                if not torch.equal(high[offset : offset + n], low[offset : offset + n]):
                    differ.append(name)
                offset += n
            raise RuntimeError(
                f"the {self.world_size} processes hold different {what} ({', '.join(differ[:5])}): their gradients "
                "were not averaged alike; this is a bug, please report it"
            )


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A tensor's bit patterns, flattened, as int64 (which every backend reduces)."""
    kinds = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
    flat = t.detach().contiguous().reshape(-1)
    return flat.view(kinds[flat.element_size()]).to(torch.int64)


#: One process: no process group, every method a no-op.
SINGLE = Ranks()
