"""Metrics of a run: ``workdir/metrics.jsonl`` rows and TensorBoard events."""

from __future__ import annotations

import json
import os


class MetricWriter:
    """Appends metrics to ``workdir/metrics.jsonl`` and TensorBoard events in ``workdir/tb``."""

    def __init__(self, workdir: str, resume_step: int):
        from tensorboardX import SummaryWriter  # noqa: PLC0415

        self.path = os.path.join(workdir, "metrics.jsonl")
        if os.path.exists(self.path):  # drop rows a killed run wrote after its last checkpoint
            with open(self.path) as fh:
                rows = [json.loads(line) for line in fh if line.strip()]
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
