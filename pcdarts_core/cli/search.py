"""``python -m pcdarts_core.search``: one PC-DARTS search from the command line (the search itself is
:class:`pcdarts_core.search.Search`).

Writes into ``--out``: ``config.json``, ``checkpoint.pt`` (after every epoch),
``metrics.csv`` (one row per epoch), ``history.json`` (every epoch's record,
softmaxed α/β included), ``genotype.json`` and ``genotype.txt`` (the current
genotype, final once the search ends). Every file is replaced atomically.
Nothing is created before the settings and the data have been checked.

Under ``torchrun --nproc_per_node N -m pcdarts_core.search ...`` the search runs data parallel on N
processes (:mod:`pcdarts_core.distributed`: NCCL, one GPU each, or gloo on CPUs); ``--batch-size`` is the
batch of the whole search, each process takes an equal share of it, and the first process alone prints and
writes ``--out``. A search resumes on as many processes as it started with.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..config import SEARCH_PROTOCOLS, SearchConfig
from ..distributed import Ranks
from ..errors import UserInputError
from ..outputs import CHECKPOINT, write_config, write_genotype
from ..records import EpochRecord, records_csv
from ..search import Search
from . import run_main
from .config_flags import add_config_arguments, config_overrides
from .epoch_runs import add_run_arguments, open_run, run_epochs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pcdarts_core.search",
        description="Run one PC-DARTS architecture search (defaults: the paper's CIFAR-10 protocol).",
    )
    parser.add_argument(
        "--protocol",
        choices=tuple(SEARCH_PROTOCOLS),
        help="the published search whose settings are the defaults (cifar: the CIFAR-10 search; imagenet: the "
        "ImageNet search of train_search_imagenet.py, K=2, 50 epochs of batch 1024, lr 0.5 with 5 warm-up epochs, "
        "on the train/ and val/ folders of python -m pcdarts_core.data.subset); the flags below override single "
        "settings (default: cifar)",
    )
    add_run_arguments(parser, "search", Search.RESUMABLE_CHANGES)
    add_config_arguments(parser, SearchConfig, "search settings")
    return parser


def write_outputs(out: Path, search: Search) -> None:
    """Checkpoint first, then the human-readable files, each atomically."""
    search.save(out / CHECKPOINT)
    atomic_write_text(out / "metrics.csv", records_csv(search.history, EpochRecord))
    atomic_write_text(out / "history.json", json.dumps([r.to_dict() for r in search.history]))
    write_genotype(out, search.genotype())


def _describe(record: EpochRecord, epochs: int) -> str:
    return (
        f"epoch {record.epoch}/{epochs}  lr {record.lr:.4f}  train {record.train_loss:.3f}/{record.train_acc:.3f}  "
        f"valid {record.valid_loss:.3f}/{record.valid_acc:.3f}  {record.images_per_s:.0f} img/s"
        + ("  (α frozen)" if record.arch_frozen else "")
    )


def _resume(args: argparse.Namespace, checkpoint: Path, overrides: dict, ranks: Ranks) -> Search:
    if args.protocol is not None:
        raise UserInputError("--protocol: a resumed search keeps the settings of its checkpoint; leave --protocol out")
    return Search.resume(checkpoint, ranks=ranks, **overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = config_overrides(args, SearchConfig)
    ranks = Ranks.launched(overrides.get("device", "auto"))
    try:
        return _search(args, overrides, ranks)
    finally:
        ranks.close()


def _search(args: argparse.Namespace, overrides: dict, ranks: Ranks) -> int:
    # Settings, data and checkpoint are all checked before anything is written.
    search = open_run(
        args.out,
        args.resume,
        "search",
        resume_from=lambda checkpoint: _resume(args, checkpoint, overrides, ranks),
        start=lambda: Search(SearchConfig.protocol(args.protocol or "cifar", **overrides), ranks=ranks),
    )
    if search.done:
        if ranks.main:
            print(
                f"search in {args.out} already finished {search.epoch} epochs; raise --epochs to extend it",
                file=sys.stderr,
            )
            print(search.genotype().to_text())
        return 0
    if ranks.main:
        write_config(args.out, search.config)
    cfg = search.config
    on = f", {ranks.world_size} processes" if ranks.several else ""
    code = run_epochs(
        search,
        args.out,
        quiet=args.quiet,
        main=ranks.main,
        desc=f"search k={cfg.k} edge_norm={cfg.edge_norm} seed={cfg.seed}",
        intro=(
            f"{cfg.dataset}: {len(search.split['train'])} train / {len(search.split['valid'])} valid images, "
            f"device {search.device}{on}, epochs {search.epoch + 1}..{cfg.epochs} (architecture frozen for "
            f"{cfg.warmup_epochs})"
        ),
        save=(lambda: write_outputs(args.out, search)) if ranks.main else (lambda: None),
        postfix=lambda r: {"train_acc": f"{r.train_acc:.3f}", "valid_acc": f"{r.valid_acc:.3f}"},
        describe=lambda r: _describe(r, cfg.epochs),
    )
    if code == 0 and ranks.main:
        print(search.genotype().to_text())
    return code


if __name__ == "__main__":
    run_main(main)
