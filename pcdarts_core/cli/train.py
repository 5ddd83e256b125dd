"""``python -m pcdarts_core.train``: retrain a genotype from scratch (the retraining itself is
:class:`pcdarts_core.train.Training`).

Writes into ``--out``: ``config.json``, ``genotype.json`` and ``genotype.txt`` (what is
trained), ``checkpoint.pt`` (after every epoch, so the last one is the final checkpoint),
``metrics.csv`` (one row per epoch) and ``summary.json`` (the final epoch's accuracies,
parameters, multiply-adds, time and memory). Every file is replaced atomically. Nothing is
created before the settings, the genotype and the data have been checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..config import PROTOCOLS, TrainConfig
from ..errors import UserInputError
from ..known_genotypes import KNOWN_GENOTYPES, load_genotype
from ..outputs import CHECKPOINT, write_config, write_genotype
from ..records import TrainRecord, records_csv
from ..train import Training
from . import run_main
from .config_flags import add_config_arguments, config_overrides
from .epoch_runs import add_run_arguments, open_run, run_epochs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pcdarts_core.train",
        description="Retrain a genotype from scratch (defaults: the DARTS/PC-DARTS CIFAR-10 protocol).",
    )
    parser.add_argument(
        "--genotype",
        help=f"a known name ({', '.join(KNOWN_GENOTYPES)}), a genotype file (genotype.json or Genotype(...) text) "
        "or the text itself; required unless --resume",
    )
    parser.add_argument(
        "--protocol",
        choices=tuple(PROTOCOLS),
        help="the published protocol whose settings are the defaults (cifar: 600 epochs, batch 96, lr 0.025 cosine; "
        "imagenet: 250 epochs, batch 1024, lr 0.5 with 5 warm-up epochs, the PC-DARTS linear decay, label smoothing "
        "0.1); "
        "the flags below override single settings (default: cifar)",
    )
    add_run_arguments(parser, "retraining", Training.RESUMABLE_CHANGES)
    add_config_arguments(parser, TrainConfig, "retraining settings")
    return parser


def write_outputs(out: Path, training: Training) -> None:
    """Checkpoint first, then the human-readable files, each atomically."""
    training.save(out / CHECKPOINT)
    atomic_write_text(out / "metrics.csv", records_csv(training.history, TrainRecord))
    atomic_write_text(out / "summary.json", json.dumps(training.result().summary(), indent=2) + "\n")


def _resume(args: argparse.Namespace, checkpoint: Path, overrides: dict) -> Training:
    if args.protocol is not None:
        raise UserInputError(
            "--protocol: a resumed retraining keeps the settings of its checkpoint; leave --protocol out"
        )
    training = Training.resume(checkpoint, **overrides)
    if args.genotype is not None and load_genotype(args.genotype) != training.genotype():
        raise UserInputError(
            f"--genotype: {checkpoint} retrains {training.genotype().to_text()}; leave --genotype out or use another "
            "--out"
        )
    return training


def _start(args: argparse.Namespace, overrides: dict) -> Training:
    if args.genotype is None:
        raise UserInputError(
            "--genotype: required to start a retraining; give a known name, a genotype file or its text"
        )
    genotype = load_genotype(args.genotype)
    return Training(TrainConfig.protocol(args.protocol or "cifar", **overrides), genotype)


def _summary_line(training: Training) -> str:
    summary = training.result().summary()
    valid = f", valid acc {summary['valid_acc']:.4f}" if summary["valid_acc"] is not None else ""
    return (
        f"final epoch {summary['epochs']}: test acc {summary['test_acc']:.4f}{valid}; "
        f"{summary['parameters'] / 1e6:.2f}M parameters, {summary['multiply_adds'] / 1e6:.1f}M multiply-adds"
    )


def _describe(record: TrainRecord, epochs: int) -> str:
    valid = f"  valid {record.valid_loss:.3f}/{record.valid_acc:.3f}" if record.valid_acc is not None else ""
    return (
        f"epoch {record.epoch}/{epochs}  lr {record.lr:.4f}  drop path {record.drop_path_prob:.3f}  "
        f"train {record.train_loss:.3f}/{record.train_acc:.3f}  test {record.test_loss:.3f}/{record.test_acc:.3f}"
        f"{valid}  {record.images_per_s:.0f} img/s"
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = config_overrides(args, TrainConfig)
    # Settings, genotype, data and checkpoint are all checked before anything is written.
    training = open_run(
        args.out,
        args.resume,
        "retraining",
        resume_from=lambda checkpoint: _resume(args, checkpoint, overrides),
        start=lambda: _start(args, overrides),
    )
    if training.done:
        print(
            f"retraining in {args.out} already finished {training.epoch} epochs; raise --epochs to extend it",
            file=sys.stderr,
        )
        print(_summary_line(training))
        return 0
    write_config(args.out, training.config)
    write_genotype(args.out, training.genotype())
    cfg, split = training.config, training.split
    valid = f" / {len(split['valid'])} valid" if "valid" in split else ""
    code = run_epochs(
        training,
        args.out,
        quiet=args.quiet,
        desc=f"train {cfg.network} C={cfg.init_channels} L={cfg.layers} seed={cfg.seed}",
        intro=(
            f"{cfg.dataset}: {len(split['train'])} train{valid} / {len(training.data.test)} test images, device "
            f"{training.device}, "
            f"{'bf16' if training.bf16 else 'fp32'}{', channels-last' if training.channels_last else ''}; "
            f"{training.cost.parameters / 1e6:.2f}M parameters, {training.cost.multiply_adds / 1e6:.1f}M "
            "multiply-adds; "
            f"epochs {training.epoch + 1}..{cfg.epochs}"
        ),
        save=lambda: write_outputs(args.out, training),
        postfix=lambda r: {"train_acc": f"{r.train_acc:.3f}", "test_acc": f"{r.test_acc:.3f}"},
        describe=lambda r: _describe(r, cfg.epochs),
    )
    if code == 0:
        print(_summary_line(training))
    return code


if __name__ == "__main__":
    run_main(main)
