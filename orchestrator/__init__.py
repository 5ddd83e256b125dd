"""pcdarts-study's orchestrator: many PC-DARTS searches as one study.

Ray Tune runs the search trials of a grid (seed x K x edge normalisation x any other swept
search setting), the study selects the best genotypes, retrains them next to random
baselines, logs every trial to MLflow as a nested run of one study run, and writes pandas
reports. Entry point: ``python -m orchestrator.run STUDY.yaml``.
"""
