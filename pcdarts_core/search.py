"""``python -m pcdarts_core.search``: one PC-DARTS search from the command line.

Writes into ``--out``: ``config.json``, ``checkpoint.pt`` (after every epoch),
``metrics.csv`` (one row per epoch), ``history.json`` (every epoch's record,
softmaxed α/β included), ``genotype.json`` and ``genotype.txt`` (the current
genotype, final once the search ends). Every file is replaced atomically.
Nothing is created before the settings and the data have been checked.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from tqdm import tqdm

from .checkpoint import atomic_write_text
from .cli import add_config_arguments, config_overrides, run_main
from .config import SearchConfig
from .errors import UserInputError
from .records import EpochRecord
from .searcher import Search, SearchDiverged

CHECKPOINT = "checkpoint.pt"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pcdarts_core.search",
        description="Run one PC-DARTS architecture search (defaults: the paper's CIFAR-10 protocol).",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--resume",
        action="store_true",
        help=f"continue the search saved in --out/{CHECKPOINT}; settings may be repeated, and only "
        + ", ".join("--" + name.replace("_", "-") for name in sorted(Search.RESUMABLE_CHANGES))
        + " may change",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only the final genotype")
    add_config_arguments(parser, SearchConfig, "search settings")
    return parser


def write_outputs(out: Path, search: Search) -> None:
    """Checkpoint first, then the human-readable files, each atomically."""
    search.save(out / CHECKPOINT)
    atomic_write_text(out / "metrics.csv", metrics_csv(search.history))
    atomic_write_text(out / "history.json", json.dumps([r.to_dict() for r in search.history]))
    genotype = search.genotype()
    atomic_write_text(out / "genotype.json", json.dumps(genotype.to_dict(), indent=2) + "\n")
    atomic_write_text(out / "genotype.txt", genotype.to_text() + "\n")


def metrics_csv(history: list[EpochRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*EpochRecord.SCALARS, "genotype"])
    for record in history:
        writer.writerow([*record.scalars().values(), record.genotype.to_text()])
    return buffer.getvalue()


def _start(args: argparse.Namespace) -> Search:
    overrides = config_overrides(args, SearchConfig)
    checkpoint = args.out / CHECKPOINT
    if args.resume:
        if not checkpoint.is_file():
            raise UserInputError(f"--resume: {checkpoint} does not exist; run without --resume to start a search there")
        return Search.resume(checkpoint, **overrides)
    if checkpoint.exists():
        raise UserInputError(f"--out {args.out}: already holds a search; pass --resume to continue it or choose another --out")
    return Search(SearchConfig(**overrides))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    search = _start(args)  # settings, data and checkpoint are all checked before anything is written
    if search.done:
        print(f"search in {args.out} already finished {search.epoch} epochs; raise --epochs to extend it", file=sys.stderr)
        print(search.genotype().to_text())
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "config.json", search.config.model_dump_json(indent=2) + "\n")

    cfg = search.config
    steps = search.steps_per_epoch
    bar = tqdm(
        total=cfg.epochs * steps,
        initial=search.epoch * steps,
        disable=args.quiet,
        unit="step",
        desc=f"search k={cfg.k} edge_norm={cfg.edge_norm} seed={cfg.seed}",
        file=sys.stderr,
        dynamic_ncols=True,
    )
    if not args.quiet:
        bar.write(
            f"{cfg.dataset}: {len(search.split['train'])} train / {len(search.split['valid'])} valid images, "
            f"device {search.device}, epochs {search.epoch + 1}..{cfg.epochs} (architecture frozen for {cfg.warmup_epochs})"
        )
    try:
        for record in search.epochs(on_step=lambda step, total: bar.update(1)):
            write_outputs(args.out, search)
            bar.set_postfix(train_acc=f"{record.train_acc:.3f}", valid_acc=f"{record.valid_acc:.3f}")
            if not args.quiet:
                bar.write(
                    f"epoch {record.epoch}/{cfg.epochs}  lr {record.lr:.4f}  train {record.train_loss:.3f}/{record.train_acc:.3f}  "
                    f"valid {record.valid_loss:.3f}/{record.valid_acc:.3f}  {record.images_per_s:.0f} img/s"
                    + ("  (α frozen)" if record.arch_frozen else "")
                )
    except SearchDiverged as err:
        bar.close()
        print(f"error: {err}; the last good epoch is saved in {args.out / CHECKPOINT}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        print(f"interrupted after epoch {search.epoch}; continue with --resume --out {args.out}", file=sys.stderr)
        return 130
    bar.close()
    print(search.genotype().to_text())
    return 0


if __name__ == "__main__":
    run_main(main)
