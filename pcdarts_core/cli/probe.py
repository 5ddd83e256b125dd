"""``python -m pcdarts_core.probe``: the peak GPU memory of one trial, measured in this fresh process
(:func:`pcdarts_core.probe.probe_peak_memory`) and printed as one line of JSON."""

from __future__ import annotations

import argparse
import json

from ..config import SearchConfig, TrainConfig
from ..genotype import Genotype
from ..probe import probe_peak_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pcdarts_core.probe", description="Measure the peak GPU memory of one trial; prints JSON."
    )
    parser.add_argument("--kind", choices=["search", "training"], required=True)
    parser.add_argument("--config", required=True, help="the trial's settings as JSON")
    parser.add_argument("--genotype", help="the genotype as JSON (training)")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    settings = json.loads(args.config)
    if args.kind == "search":
        result = probe_peak_memory(SearchConfig(**settings), steps=args.steps)
    else:
        genotype = Genotype.from_dict(json.loads(args.genotype)) if args.genotype else None
        result = probe_peak_memory(TrainConfig(**settings), genotype, steps=args.steps)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
