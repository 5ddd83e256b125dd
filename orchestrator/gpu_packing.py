"""GPU shares measured, not guessed: ``resources.gpus_per_trial: auto``.

With ``auto`` each trial asks Ray for the share of one GPU that its measured peak memory needs
(:func:`pcdarts_core.probe.gpu_share`: the peak plus ``resources.gpu_memory_margin`` of it, plus the
memory every CUDA process holds, as 1/n of the GPU, at most 1). Before a stage starts,
:func:`measure_gpu_shares` probes each distinct trial setting once (seeds do not change the memory):
two epochs of a few steps on the setting's own data, in a fresh process on the driver
(``python -m pcdarts_core.probe``), so the driver holds no GPU memory afterwards and no trial shares
the GPU with a probe. The share is written into each trial's description (its ``gpus``, which
its row in the reports shows), and :func:`trial_resources` hands it to Tune unchanged. A restored
stage keeps the descriptions Tune saved, shares included, so it probes nothing again.

Where the Ray cluster has no GPU, ``auto`` means no GPU; where a setting cannot be probed (no CUDA on
the driver, the probe failed or ran out of time), its trials get a whole GPU. The study says both.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import ray
import torch

from pcdarts_core.probe import gpu_share

from .trial import Trial

Probe = Callable[[Trial], dict[str, Any]]
Say = Callable[[str], None]
MiB = 2**20
PROBE_TIMEOUT_S = 900
NO_GPU_NOTE = "resources.gpus_per_trial=auto: the Ray cluster has no GPU, so every trial runs on its CPUs (0 GPUs)"


class ProbeUnavailable(RuntimeError):
    """The peak memory of a trial could not be measured here."""


def probe_in_subprocess(trial: Trial) -> dict[str, Any]:
    """Measure one trial's peak GPU memory in a fresh process; the probe's JSON as a dict."""
    if not torch.cuda.is_available():
        raise ProbeUnavailable("the driver has no CUDA device to probe on")
    kind = "search" if trial.stage == "search" else "training"
    command = [sys.executable, "-m", "pcdarts_core.probe", "--kind", kind, "--config", json.dumps(trial.config)]
    if trial.genotype is not None:
        command += ["--genotype", json.dumps(trial.genotype)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ProbeUnavailable(f"the probe took more than {PROBE_TIMEOUT_S} s") from None
    if done.returncode != 0 or not done.stdout.strip():
        tail = " ".join(done.stderr.strip().splitlines()[-1:]) or f"exit {done.returncode}"
        raise ProbeUnavailable(f"the probe failed: {tail}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except ValueError:
        raise ProbeUnavailable(f"the probe printed no result: {done.stdout.strip()[-200:]!r}") from None


def probe_key(trial: Trial) -> str:
    """What decides a trial's memory: its stage, settings without the seed, and genotype."""
    config = {k: v for k, v in trial.config.items() if k != "seed"}
    return json.dumps([trial.stage, config, trial.genotype], sort_keys=True)


def measure_gpu_shares(
    trials: list[Trial],
    margin: float,
    gpus_in_cluster: float,
    probe: Probe | None = None,
    say: Say = print,
) -> list[Trial]:
    """The trials, each with its GPU share as ``gpus``, probing each distinct setting once (``probe``,
    by default :func:`probe_in_subprocess`; one after another, before any trial of the stage runs).

    Without a GPU in the cluster every share is 0 and nothing is probed. A setting whose probe
    cannot run gets 1 (a whole GPU: safe, but unpacked), said as a warning naming the setting.
    """
    probe = probe or probe_in_subprocess
    if gpus_in_cluster <= 0:
        say(NO_GPU_NOTE)
        return [trial.model_copy(update={"gpus": 0.0}) for trial in trials]
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(probe_key(trial), []).append(trial)
    stage = trials[0].stage if trials else "?"
    say(
        f"stage {stage}: measuring the GPU memory of {len(groups)} setting(s) on the driver's GPU "
        "(one short probe each)"
    )
    shares = {key: _share_of(group[0], len(group), margin, probe, say) for key, group in groups.items()}
    return [trial.model_copy(update={"gpus": shares[probe_key(trial)]}) for trial in trials]


def _share_of(trial: Trial, count: int, margin: float, probe: Probe, say: Say) -> float:
    """The GPU share of the ``count`` trials of ``trial``'s setting, from one probe of it."""
    what = f"resources.gpus_per_trial=auto: {trial.stage} {trial.setting}"
    try:
        measured = probe(trial)
    except ProbeUnavailable as err:
        say(f"WARNING {what}: could not measure its GPU memory ({err}), so its {count} trial(s) get a whole GPU each")
        return 1.0
    share = gpu_share(int(measured["peak_bytes"]), int(measured["total_bytes"]), margin)
    say(
        f"{what}: peak {measured['peak_bytes'] / MiB:.0f} MiB of {measured['total_bytes'] / MiB:.0f} MiB "
        f"on {measured.get('device_name', 'the GPU')}, +{margin:.0%} margin: {share:g} GPU per trial"
    )
    return share


def trial_resources(config: dict[str, Any]) -> dict[str, float]:
    """A trial's resources for ``tune.with_resources``: the CPUs and the GPU share its description
    holds (measured before the stage started; nothing is probed here). A description without a
    measured share (a stage begun by an older version) asks for a whole GPU."""
    trial = Trial.from_param(config)
    return {"cpu": trial.cpus, "gpu": trial.gpus if isinstance(trial.gpus, float) else 1.0}


def cluster_gpus() -> float:
    """GPUs of the Ray cluster this process is connected to (0 when none or not connected)."""
    return float(ray.cluster_resources().get("GPU", 0.0)) if ray.is_initialized() else 0.0
