"""Multi-process (multi-host) runs on ``jax.distributed``: who the processes are, connecting them,
checking that they run the same config, and which rows of a global batch each one reads.

Every process runs the same program with the same config; they differ only in the process id.
The coordinator address, process count and process id come from ``config.parallel``
(``--config.parallel.process_id=1`` etc.) or, where unset there, from the usual environment
variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``. With
``config.parallel.distributed=True`` and nothing set, JAX detects a SLURM job (``SLURM_*``
variables, one task per process), a Cloud TPU pod or Open MPI by itself.

Global batch ``s`` is the same ``B`` examples whatever the process count ``n``: process ``i`` reads
rows ``[i * B / n, (i + 1) * B / n)`` of it and nothing else, so ``n`` processes x ``d`` devices
compute the same step as one process with ``n * d`` devices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import sys
import threading
import time

import jax
import numpy as np

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
# Config keys that legitimately differ between the processes of one run.
PER_PROCESS_KEYS = ("parallel.process_id",)


@dataclasses.dataclass(frozen=True)
class ProcessSpec:
    """Who this process is in a multi-process run (``None``: left to JAX's cluster detection).

    Attributes:
      coordinator_address: ``host:port`` of process 0's coordination service.
      num_processes: number of processes in the run.
      process_id: this process's index in ``[0, num_processes)``.
      timeout_s: seconds to wait for the coordinator and every process to join.
    """

    coordinator_address: str | None
    num_processes: int | None
    process_id: int | None
    timeout_s: int = 300


def _int_env(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def process_spec(cfg) -> ProcessSpec | None:
    """The multi-process settings from ``config.parallel`` (``cfg``) and the environment, or ``None``
    for a single-process run.

    Config fields (all optional): ``distributed`` (bool), ``coordinator_address`` (``''``: unset),
    ``num_processes`` (``0``: unset), ``process_id`` (``-1``: unset), ``init_timeout_s``.
    """
    address = str(cfg.get("coordinator_address", "") or "") or os.environ.get(ENV_COORDINATOR) or None
    num = int(cfg.get("num_processes", 0) or 0) or _int_env(ENV_NUM_PROCESSES)
    pid = int(cfg.get("process_id", -1))
    pid = pid if pid >= 0 else _int_env(ENV_PROCESS_ID)
    timeout = int(cfg.get("init_timeout_s", 300))
    wanted = bool(cfg.get("distributed", False)) or address is not None or (num or 1) > 1
    if not wanted:
        return None
    if timeout <= 0:
        raise ValueError(f"config.parallel.init_timeout_s: {timeout} is not a positive number of seconds")
    if num is not None and num < 1:
        raise ValueError(f"config.parallel.num_processes / {ENV_NUM_PROCESSES}: {num} is not >= 1")
    if address is not None and (num is None or pid is None):
        raise ValueError(
            f"multi-process run with coordinator {address}: set the process count and this process's id "
            f"(config.parallel.num_processes / {ENV_NUM_PROCESSES} = {num}, "
            f"config.parallel.process_id / {ENV_PROCESS_ID} = {pid})"
        )
    if num is not None and pid is not None and not 0 <= pid < num:
        raise ValueError(
            f"config.parallel.process_id / {ENV_PROCESS_ID}: {pid} is not in [0, {num}) "
            f"(config.parallel.num_processes / {ENV_NUM_PROCESSES} = {num})"
        )
    if address is not None and ":" not in address:
        raise ValueError(
            f"config.parallel.coordinator_address / {ENV_COORDINATOR}: {address!r} is not host:port"
        )
    return ProcessSpec(address, num, pid, timeout)


def _wait_for_port(address: str, timeout_s: float) -> None:
    host, port = address.rsplit(":", 1)
    host = host.strip("[]")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError as err:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"coordinator {address} could not be reached within {timeout_s:g} s ({err}); "
                    "start process 0 (it hosts the coordinator) and check the address and port "
                    "(config.parallel.coordinator_address / JAX_COORDINATOR_ADDRESS), or raise "
                    "config.parallel.init_timeout_s"
                ) from None
            time.sleep(0.2)


def initialize(spec: ProcessSpec) -> None:
    """``jax.distributed.initialize`` with ``spec``; must run before any other JAX call.

    A process other than 0 first waits up to ``spec.timeout_s`` for the coordinator's port and
    raises ``TimeoutError`` naming the address when it stays closed. If the coordinator is up but
    some process never joins, JAX aborts the process after ``spec.timeout_s``; a message naming the
    missing piece is printed to stderr just before.
    """
    if jax.distributed.is_initialized():
        return
    # CPU collectives across processes (the default in jax 0.10; explicit so a changed default
    # cannot silently turn multi-process CPU runs into errors).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if spec.coordinator_address is not None and spec.process_id not in (None, 0):
        _wait_for_port(spec.coordinator_address, spec.timeout_s)
    done = threading.Event()

    def warn():
        if not done.wait(max(spec.timeout_s - 1.0, 0.5)):
            print(
                f"nemo_jax: process {spec.process_id} of {spec.num_processes}: not every process joined "
                f"the coordinator {spec.coordinator_address} within {spec.timeout_s} s; JAX stops this "
                "process now. Start all processes with the same coordinator address and process count.",
                file=sys.stderr,
                flush=True,
            )

    threading.Thread(target=warn, daemon=True).start()
    try:
        jax.distributed.initialize(
            spec.coordinator_address,
            spec.num_processes,
            spec.process_id,
            initialization_timeout=int(spec.timeout_s),
        )
    finally:
        done.set()


def config_digest(config_dict: dict) -> str:
    """SHA-256 of the config as JSON, without the keys that differ per process."""
    flat = json.loads(json.dumps(config_dict, default=str))
    for key in PER_PROCESS_KEYS:
        head, _, leaf = key.rpartition(".")
        node = flat
        for part in head.split(".") if head else []:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()


def check_same_config(config_dict: dict) -> None:
    """Raises ``ValueError`` on every process unless all processes run the same config (up to
    :data:`PER_PROCESS_KEYS`). Exchanges a 32-byte digest with one all-gather; a no-op for one
    process."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils  # noqa: PLC0415

    digest = config_digest(config_dict)
    local = np.frombuffer(bytes.fromhex(digest), np.int32)  # [8]
    everyone = np.asarray(multihost_utils.process_allgather(local))  # [P, 8]
    digests = [row.astype(np.int32).tobytes().hex() for row in everyone]
    differ = [i for i, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise ValueError(
            f"config differs between processes: process(es) {differ} run a config other than process 0's "
            f"(this is process {jax.process_index()}, config digest {digest[:12]}; process 0: "
            f"{digests[0][:12]}). Start every process with the same --config and --config.* overrides; "
            f"only {', '.join(PER_PROCESS_KEYS)} may differ."
        )


def local_batch_size(global_batch: int, what: str = "config.train.batch_size") -> int:
    """Rows of a global batch this process reads: ``global_batch / process_count``; a clear error
    when the processes, or this process's devices, do not divide it."""
    n, d = jax.process_count(), jax.local_device_count()
    if global_batch % n:
        raise ValueError(f"{what}={global_batch} is not divisible by the {n} processes of this run")
    local = global_batch // n
    if local % d:
        raise ValueError(
            f"{what}={global_batch}: the {local} rows of each of the {n} process(es) are not divisible "
            f"by its {d} local devices"
        )
    return local
