"""GPU shares measured, not guessed: ``resources.gpus_per_trial: auto``.

With ``auto`` each trial asks Ray for the share of one GPU that its measured peak memory needs
(:func:`pcdarts_core.probe.gpu_share`: the peak plus ``resources.gpu_memory_margin`` of it, plus the
memory every CUDA process holds, as 1/n of the GPU, at most 1). The peak is measured once per
distinct trial setting (seeds do not change it) by a short probe of that setting, two epochs of a
few steps on its own data, run in a fresh process on the driver (``python -m pcdarts_core.probe``),
so the driver holds no GPU memory afterwards. Where the Ray cluster has no GPU, ``auto`` means no
GPU (the study says so once); where the driver cannot probe (no CUDA there), each trial gets a whole
GPU, and the study says why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any, Callable

from pcdarts_core.probe import gpu_share

Probe = Callable[[dict[str, Any]], dict[str, Any]]
Say = Callable[[str], None]
MiB = 2**20
PROBE_TIMEOUT_S = 900

#: The measurements of this driver process by probe key: a probe's JSON, or the reason it could not
#: run. Process-wide on purpose: Tune unpickles the trainable, and with it a fresh copy of
#: :class:`AutoGpuShares`, each time it needs a trial's resources, so a per-object cache would
#: probe every trial instead of every setting.
_MEASURED: dict[str, dict[str, Any] | str] = {}


class ProbeUnavailable(RuntimeError):
    """The peak memory of a trial could not be measured here."""


def probe_in_subprocess(trial: dict[str, Any]) -> dict[str, Any]:
    """Measure one trial's peak GPU memory in a fresh process; the probe's JSON as a dict."""
    import torch

    if not torch.cuda.is_available():
        raise ProbeUnavailable("the driver has no CUDA device to probe on")
    kind = "search" if trial["stage"] == "search" else "training"
    command = [sys.executable, "-m", "pcdarts_core.probe", "--kind", kind, "--config", json.dumps(trial["config"])]
    if "genotype" in trial:
        command += ["--genotype", json.dumps(trial["genotype"])]
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


def probe_key(trial: dict[str, Any]) -> str:
    """What decides a trial's memory: its stage, settings without the seed, and genotype."""
    config = {k: v for k, v in trial["config"].items() if k != "seed"}
    return json.dumps([trial["stage"], config, trial.get("genotype")], sort_keys=True)


class AutoGpuShares:
    """The resources of each trial under ``gpus_per_trial: auto``, for ``tune.with_resources``.

    Tune calls it on the driver with each trial's config; it returns the trial's placement group
    (``cpus`` CPUs and the measured GPU share) and writes the share into the trial's description
    (``config["trial"]["gpus"]``), so the trial's row reports the share it ran with.
    """

    def __init__(
        self,
        cpus: float,
        margin: float,
        probe: Probe = probe_in_subprocess,
        say: Say = print,
        measured: dict[str, dict[str, Any] | str] | None = None,
    ) -> None:
        self.cpus = cpus
        self.margin = margin
        self.probe = probe
        self.say = say
        self._measured = measured  # None: this process's measurements, shared by every copy

    @property
    def measured(self) -> dict[str, dict[str, Any] | str]:
        return _MEASURED if self._measured is None else self._measured

    def __call__(self, config: dict[str, Any]) -> Any:
        from ray.tune import PlacementGroupFactory

        trial = config["trial"]
        share = self.share(trial, cluster_gpus())
        trial["gpus"] = share
        bundle = {"CPU": self.cpus, **({"GPU": share} if share > 0 else {})}
        return PlacementGroupFactory([bundle])

    def share(self, trial: dict[str, Any], gpus_in_cluster: float) -> float:
        """The GPU share of one trial (probed once per distinct setting)."""
        if gpus_in_cluster <= 0:
            return 0.0
        key = probe_key(trial)
        fresh = key not in self.measured
        if fresh:
            try:
                self.measured[key] = self.probe(trial)
            except ProbeUnavailable as err:
                self.measured[key] = str(err)
        measured = self.measured[key]
        what = f"resources.gpus_per_trial=auto: {trial['stage']} {trial.get('setting', trial['key'])}"
        if isinstance(measured, str):
            if fresh:
                self.say(f"{what}: {measured}; each such trial gets a whole GPU")
            return 1.0
        share = gpu_share(int(measured["peak_bytes"]), int(measured["total_bytes"]), self.margin)
        if fresh:
            self.say(
                f"{what}: peak {measured['peak_bytes'] / MiB:.0f} MiB of {measured['total_bytes'] / MiB:.0f} MiB "
                f"on {measured.get('device_name', 'the GPU')}, +{self.margin:.0%} margin: {share:g} GPU per trial"
            )
        return share


def cluster_gpus() -> float:
    """GPUs of the Ray cluster this process is connected to (0 when none or not connected)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0)) if ray.is_initialized() else 0.0


def no_gpu_note(available: dict[str, float]) -> str | None:
    """The note a study prints when ``auto`` finds no GPU in the cluster, else None."""
    if available.get("GPU", 0.0) > 0:
        return None
    return "resources.gpus_per_trial=auto: the Ray cluster has no GPU, so every trial runs on its CPUs (0 GPUs)"
