"""``python -m pcdarts_core.probe``: runs :func:`pcdarts_core.cli.probe.main`, the probe's command line."""

from ..cli.probe import main

if __name__ == "__main__":
    raise SystemExit(main())
