"""The files of a study folder, by name (what each holds: see :mod:`orchestrator.study`)."""

SPEC_FILE = "spec.yaml"
STATE_FILE = "study.json"
SELECTION_FILE = "selection.csv"
#: The genotypes a screen ranks (``select.by: screen``), written by the select stage.
CANDIDATES_FILE = "candidates.csv"


def stage_table(stage: str) -> str:
    """The table of a Tune stage's trials, one row each (``search.csv``, ``retrain.csv``)."""
    return f"{stage}.csv"
