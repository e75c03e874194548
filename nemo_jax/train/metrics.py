"""Metrics of a run: ``workdir/metrics.jsonl`` rows and TensorBoard events."""

from __future__ import annotations

import json
import os
import warnings


def read_metrics(path: str) -> list[dict]:
    """The rows of a ``metrics.jsonl``. A partial LAST line (a run killed while writing it) is
    dropped with a warning; a damaged line before it is a ``ValueError`` naming the line."""
    with open(path) as fh:
        lines = [(i + 1, line) for i, line in enumerate(fh) if line.strip()]
    rows = []
    for k, (number, line) in enumerate(lines):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if k < len(lines) - 1:
                raise ValueError(f"{path}:{number}: not a JSON row ({err}); fix or delete the line") from None
            warnings.warn(
                f"{path}:{number}: dropped a partial last line (a run killed while writing it): "
                f"{line.strip()!r}",
                stacklevel=2,
            )
    return rows


class MetricWriter:
    """Appends metrics to ``workdir/metrics.jsonl`` and TensorBoard events in ``workdir/tb``."""

    def __init__(self, workdir: str, resume_step: int):
        from tensorboardX import SummaryWriter  # noqa: PLC0415

        self.path = os.path.join(workdir, "metrics.jsonl")
        if os.path.exists(self.path):  # drop rows a killed run wrote after its last checkpoint
            rows = read_metrics(self.path)
            with open(self.path, "w") as fh:
                for row in rows:
                    if row.get("step", 0) <= resume_step:
                        fh.write(json.dumps(row) + "\n")
        self.tb = SummaryWriter(os.path.join(workdir, "tb"))

    def write(self, step: int, metrics: dict, prefix: str = "train") -> None:
        row = {"step": int(step), "split": prefix, **{k: float(v) for k, v in metrics.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        for k, v in metrics.items():
            self.tb.add_scalar(f"{prefix}/{k}", float(v), int(step))
        self.tb.flush()

    def close(self):
        self.tb.close()
