"""``python -m pcdarts_core.data.subset SOURCE OUT``: a per-class sample of an image folder in two disjoint
halves, ``OUT/train`` (trains the weights) and ``OUT/val`` (trains α/β): the folders that a search with
``data_split="folders"`` reads (``SearchConfig.protocol("imagenet")``, ``--data-root OUT``).

The PC-DARTS ImageNet search samples 10% and 2.5% of each class of the ImageNet training set before it
starts (the authors' README asks for it; their sampling code is not published). This does the same for any
folder of class folders: ``SOURCE``, or ``SOURCE/train`` when there is one (an ImageNet root). The images are
the files torchvision's ``ImageFolder`` reads. Per class, ``round(fraction × images)`` of them (at least one)
are drawn for each half, without replacement, by a generator seeded with ``--seed`` and the class's name, so
one class's sample does not depend on the other classes. The files are symbolic links to the originals
(copies with ``--copy``, or where links cannot be made, with a warning). Everything is written into a hidden
folder beside ``OUT`` and renamed to ``OUT`` at the end, so a failed or interrupted run leaves no ``OUT``;
``OUT/subset.json`` records the source, the fractions, the seed and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..cli import run_main
from ..errors import UserInputError

#: The two halves, named as the train/ and val/ folders of an image folder root.
HALVES = ("train", "val")
#: The PC-DARTS ImageNet search: 10% of each class for the weights, 2.5% for the architecture.
DEFAULT_FRACTIONS = (0.1, 0.025)
MANIFEST = "subset.json"


@dataclass(frozen=True)
class Subset:
    """What to write: the folder of class folders sampled, and per half, per class, the sampled files
    (paths relative to their class folder)."""

    source: Path
    halves: dict[str, dict[str, list[str]]]

    def images(self, half: str) -> int:
        return sum(len(names) for names in self.halves[half].values())


def class_images(source: Path) -> tuple[Path, dict[str, list[str]]]:
    """The folder of class folders in ``source`` (``source/train`` when there is one) and, per class, its
    image files as torchvision's ``ImageFolder`` finds them, relative to the class folder, sorted."""
    if not source.is_dir():
        raise UserInputError(f"SOURCE {source}: not a directory; pass a folder with one sub-folder per class")
    root = source / "train" if (source / "train").is_dir() else source
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as err:
        raise UserInputError(f"SOURCE {root}: {err}; put each class's images in its own sub-folder") from None
    files: dict[str, list[str]] = {name: [] for name in classes}
    for path, index in samples:
        files[classes[index]].append(os.path.relpath(path, root / classes[index]))
    return root, {name: sorted(names) for name, names in files.items()}


def check_fractions(fractions: tuple[float, float]) -> None:
    if not all(0 < f <= 1 for f in fractions) or sum(fractions) > 1:
        raise UserInputError(
            f"--per-class-fraction {' '.join(f'{f:g}' for f in fractions)}: each share must be in (0, 1] and both "
            "together at most 1 (the halves are disjoint); e.g. 0.1 0.025"
        )


def sample(files: dict[str, list[str]], fractions: tuple[float, float], seed: int) -> dict[str, dict[str, list[str]]]:
    """Per class, ``round(fraction × images)`` files (at least one) for each half, disjoint, drawn by a
    generator seeded with ``seed`` and the class's name."""
    check_fractions(fractions)
    halves: dict[str, dict[str, list[str]]] = {half: {} for half in HALVES}
    for name, names in files.items():
        counts = [max(1, round(f * len(names))) for f in fractions]
        if sum(counts) > len(names):
            raise UserInputError(
                f"class {name!r}: its {len(names)} images cannot give {counts[0]} + {counts[1]} distinct ones; "
                "use smaller --per-class-fraction values or leave the class out"
            )
        drawn = random.Random(f"{seed}/{name}").sample(names, sum(counts))
        halves[HALVES[0]][name] = sorted(drawn[: counts[0]])
        halves[HALVES[1]][name] = sorted(drawn[counts[0] :])
    return halves


def check_out(out: Path, source: Path | None = None) -> None:
    """``out`` may not hold anything yet, nor lie inside the folder sampled."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserInputError(f"OUT {out}: already exists and is not empty; choose a new folder or remove it")
    if source is not None and out.resolve().is_relative_to(source.resolve()):
        raise UserInputError(f"OUT {out}: lies inside the folder sampled ({source}); choose a folder outside it")


def write_subset(
    subset: Subset,
    out: Path,
    *,
    copy: bool = False,
    manifest: dict | None = None,
    on_file: Callable[[], None] | None = None,
) -> str:
    """Write the halves as ``out/<half>/<class>/<file>``: symbolic links to the sources (copies with ``copy``,
    or when a link cannot be made, with a warning), and ``manifest`` as ``out/subset.json``. Written into a
    hidden folder beside ``out`` and renamed at the end. Returns how the files were made: "links" or "copies"."""
    check_out(out, subset.source)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
    partial.mkdir()  # with the usual permissions, unlike tempfile.mkdtemp's owner-only folder
    how = "copies" if copy else "links"
    try:
        for half, classes in subset.halves.items():
            for name, files in classes.items():
                (partial / half / name).mkdir(parents=True)
                for file in files:
                    source, target = (subset.source / name / file).absolute(), partial / half / name / file
                    if os.sep in file:  # a file in a sub-folder of its class folder
                        target.parent.mkdir(parents=True, exist_ok=True)
                    if how == "links":
                        try:
                            os.symlink(source, target)
                        except OSError as err:
                            warnings.warn(
                                f"cannot make symbolic links beside {out} ({err.strerror or err}): copying the "
                                "files instead",
                                stacklevel=2,
                            )
                            how = "copies"
                    if how == "copies":
                        shutil.copy2(source, target)
                    if on_file is not None:
                        on_file()
        if manifest is not None:
            (partial / MANIFEST).write_text(json.dumps({**manifest, "files": how}, indent=2) + "\n")
        if out.is_dir():
            out.rmdir()  # empty, as checked
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # removes the links, never what they point to
        raise
    return how


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pcdarts_core.data.subset",
        description="Sample each class of an image folder into two disjoint halves, OUT/train (the weights) and "
        "OUT/val (the architecture), for a search with data_split=folders (the PC-DARTS ImageNet search: 10% and "
        "2.5% per class).",
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        type=Path,
        help="a folder of class folders, or a root whose train/ holds them (ImageNet)",
    )
    parser.add_argument(
        "out", metavar="OUT", type=Path, help="the folder to write (OUT/train, OUT/val); must be new or empty"
    )
    parser.add_argument(
        "--per-class-fraction",
        nargs=2,
        type=float,
        metavar=("TRAIN", "VAL"),
        default=DEFAULT_FRACTIONS,
        help="share of each class's images in OUT/train and in OUT/val (default: 0.1 0.025)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default: 0)")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of linking to them")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, only the final line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    fractions = tuple(args.per_class_fraction)
    check_fractions(fractions)
    check_out(args.out)
    root, files = class_images(args.source)
    check_out(args.out, root)
    subset = Subset(root, sample(files, fractions, args.seed))
    total = sum(subset.images(half) for half in HALVES)
    if not args.quiet:
        print(
            f"{root}: {sum(map(len, files.values()))} images in {len(files)} classes; sampling "
            f"{fractions[0]:g} and {fractions[1]:g} of each class (seed {args.seed})",
            file=sys.stderr,
        )
    manifest = {
        "source": str(root.absolute()),
        "per_class_fraction": dict(zip(HALVES, fractions)),
        "seed": args.seed,
        "classes": len(files),
        "images": {half: subset.images(half) for half in HALVES},
    }
    with tqdm(total=total, unit="file", desc="subset", file=sys.stderr, disable=args.quiet, dynamic_ncols=True) as bar:
        how = write_subset(subset, args.out, copy=args.copy, manifest=manifest, on_file=lambda: bar.update(1))
    counts = ", ".join(f"{half}/ {subset.images(half)} images" for half in HALVES)
    print(f"{args.out}: {counts}, {len(files)} classes ({'symbolic links' if how == 'links' else 'copies'})")
    return 0


if __name__ == "__main__":
    run_main(main)
