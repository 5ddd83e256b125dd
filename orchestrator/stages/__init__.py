"""The stages of a study, run in the order :data:`orchestrator.stages.sequence.SEQUENCE` declares.

Each stage is a small object of one shape (:class:`~orchestrator.stages.context.Stage`): a name, whether
it needs Ray, whether the spec has it (``applies``: the screen only with ``select.by: screen``) and
``run(context)``, which does what is left of it and marks it done in ``study.json``.

- Tune stages (:class:`~orchestrator.stages.tune_stage.TuneStage`: ``search``, ``screen``, ``retrain``) declare their
  trials (from the plan and the earlier stages' results in the study folder), their trainable, and the
  metric of their progress line; the shared runner makes one Ray Tune experiment of them, MLflow is
  caught up, and their rows go to ``STAGE.csv``.
- Plain steps (``select``, ``report``) run on the driver.

A new stage is one module here and one entry in the sequence. A Tune stage's module is imported by
every Ray worker for its trainable: it imports only what trials need (heavier imports go inside the
functions that run on the driver). This package's ``__init__`` imports nothing, so that
:mod:`~orchestrator.stages.rows` can be imported without Ray.
"""
