"""``python -m pcdarts_core.show_genotype SOURCE``: check a genotype and print it.

SOURCE is a known name (e.g. PC_DARTS_cifar), a file holding JSON or the DARTS
``Genotype(...)`` text, or that text itself. A malformed genotype prints one line
naming the problem and exits with code 2.
"""

from __future__ import annotations

import argparse
import json

from ..known_genotypes import load_genotype
from ..search_space import PARAMETER_FREE
from . import run_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pcdarts_core.show_genotype", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="known name, file (JSON or Genotype(...) text), or the text itself")
    parser.add_argument("--format", choices=("text", "json", "summary"), default="text")
    args = parser.parse_args(argv)
    genotype = load_genotype(args.source)
    if args.format == "json":
        print(json.dumps(genotype.to_dict(), indent=2))
    elif args.format == "text":
        print(genotype.to_text())
    else:
        for cell in ("normal", "reduce"):
            edges = getattr(genotype, cell)
            free = sum(op in PARAMETER_FREE for op, _ in edges)
            print(f"{cell}: {len(edges)} edges, {free} parameter-free")
            for node, pair in enumerate(genotype.nodes(cell), start=2):
                print(f"  node {node} <- {', '.join(f'{op}({src})' for op, src in pair)}")
    return 0


if __name__ == "__main__":
    run_main(main)
