"""The files of a study folder, by name (what each holds: see :mod:`orchestrator.study`)."""

SPEC_FILE = "spec.yaml"
STATE_FILE = "study.json"
SELECTION_FILE = "selection.csv"


def stage_table(stage: str) -> str:
    """The table of a Tune stage's trials, one row each (``search.csv``, ``retrain.csv``)."""
    return f"{stage}.csv"
