"""Ray for a study: the session (a local Ray started and stopped here, or a cluster joined), the checks
of a cluster address, and of the resources a trial asks for against what the cluster has."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import ray

from .errors import SpecError
from .spec import StudySpec


@contextlib.contextmanager
def ray_session(spec: StudySpec, verbose: bool) -> Iterator[None]:
    """Ray for the study: joined at ``ray.address``, or a local Ray started (and stopped) here.
    A Ray already initialised in this process is used as it is."""
    if ray.is_initialized():
        yield
        return
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": verbose,
        "logging_level": logging.INFO if verbose else logging.WARNING,
    }
    if spec.ray.address:
        check_ray_address(spec.ray.address)
    try:
        if spec.ray.address:
            ray.init(address=spec.ray.address, **options)
        else:
            ray.init(num_cpus=spec.ray.num_cpus, num_gpus=spec.ray.num_gpus, **options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        reason = " ".join(str(err).split())[:200]
        if spec.ray.address:
            raise SpecError(
                "ray.address",
                f"{spec.ray.address!r}: cannot join Ray ({reason}); start the cluster (ray start --head) "
                "or fix ray.address (leave it out for a local Ray)",
            ) from None
        raise SpecError("ray", f"cannot start a local Ray ({reason}); check ray.num_cpus and ray.num_gpus") from None
    try:
        check_resources(spec, ray.cluster_resources())
        yield
    finally:
        ray.shutdown()


def check_ray_address(address: str, timeout_s: float = 3.0) -> None:
    """A cluster address (``host:port``) answers a TCP connection within ``timeout_s``: ``ray.init``
    would otherwise wait a long time for a head that is not there. Ray Client (``ray://``) is refused:
    Ray Tune then runs each stage on the cluster, out of reach of the driver's Ctrl-C handling."""
    if address in ("auto", "local"):
        return  # Ray finds (or fails to find) the cluster of this machine itself, quickly
    if address.startswith("ray://"):
        raise SpecError(
            "ray.address",
            f"{address!r}: Ray Client addresses are not supported; run the study on a node of the cluster with "
            "ray.address: auto, or give the head's host:port (e.g. 10.0.0.1:6379)",
        )
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SpecError(
            "ray.address",
            f"{address!r}: write the head's address as host:port (e.g. 10.0.0.1:6379) or auto",
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise SpecError(
            "ray.address",
            f"{address!r}: nothing answers there ({reason}); start the cluster's head (ray start --head --port {port}) "
            "or fix ray.address (leave it out for a local Ray)",
        ) from None


def check_resources(spec: StudySpec, available: dict[str, float]) -> None:
    """A trial that asks for more than the whole cluster has would wait forever: refuse it now.
    ``gpus_per_trial: auto`` asks for at most one GPU, or none where the cluster has none (said by
    each stage, see :func:`orchestrator.gpu_packing.measure_gpu_shares`)."""
    for name, field, asked in (
        ("CPU", "cpus_per_trial", spec.resources.cpus_per_trial),
        ("GPU", "gpus_per_trial", spec.resources.gpus_per_trial),
    ):
        if asked == "auto":
            continue
        have = available.get(name, 0.0)
        if asked > have:
            raise SpecError(
                f"resources.{field}",
                f"{asked:g}: the Ray cluster has {have:g} {name}s in all, so no trial could start; "
                f"ask for at most {have:g} or add nodes",
            )
        workers = spec.resources.workers_per_trial
        if asked * workers > have:
            raise SpecError(
                "resources.workers_per_trial",
                f"{workers} workers x {asked:g} {name}s ({field}) need {asked * workers:g} {name}s, the Ray cluster "
                f"has {have:g}, so no search could start; use fewer workers, fewer {name}s each, or add nodes",
            )
