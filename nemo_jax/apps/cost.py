"""XLA's cost analysis of compiled steps, and the roofline bound it implies on a given GPU.

``jax.jit(f).lower(*args).compile().cost_analysis()`` reports the FLOPs and the bytes the compiled
program reads and writes. XLA counts the body of a ``while`` loop (``lax.scan``) ONCE, whatever its
trip count, so for the pose search (one ``lax.scan`` over the refinement steps) the cost is taken
at ``steps = 0`` and ``steps = 1``: the difference is one refinement step, and the full search is
``cost(0) + steps * (cost(1) - cost(0))``.

The roofline bound of a step is ``max(flops / peak_flops, bytes / bandwidth)``: no implementation
on that device can run it faster. The figures come from the compilation for the device at hand
(the CPU without a GPU): the FLOPs are those of the program, the bytes depend on how the
compiler fuses operations and are an estimate of a GPU's traffic, not a measurement of it.
"""

from __future__ import annotations

import dataclasses

# NVIDIA H100 SXM5 (80 GB) peaks, dense: the H100 datasheet
# (https://www.nvidia.com/en-us/data-center/h100/) gives BF16 tensor core 1,979 and TF32 tensor core
# 989 TFLOP/s "with sparsity" (dense: half), FP32 67 TFLOP/s, HBM3 3.35 TB/s; the unrounded values
# below are 132 SMs x 1.83 GHz (boost) x the per-SM rates.
H100_SXM = {
    "bf16_tensor_flops": 989.4e12,
    "tf32_tensor_flops": 494.7e12,
    "fp32_flops": 66.9e12,
    "hbm_bytes_per_s": 3.35e12,
}


@dataclasses.dataclass(frozen=True)
class Cost:
    """FLOPs, bytes accessed and transcendental ops of one compiled call."""

    flops: float
    bytes_accessed: float
    transcendentals: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            *(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True))
        )

    def __sub__(self, other: Cost) -> Cost:
        return self + other * -1.0

    def __mul__(self, k: float) -> Cost:
        return Cost(*(a * k for a in dataclasses.astuple(self)))

    def per(self, n: int) -> Cost:
        return self * (1.0 / n)

    def as_dict(self) -> dict:
        return {
            "flops": self.flops,
            "bytes_accessed": self.bytes_accessed,
            "transcendentals": self.transcendentals,
            "arithmetic_intensity": self.flops / max(self.bytes_accessed, 1.0),
        }


def compiled_cost(jitted, *args, **kwargs) -> Cost:
    """XLA's cost analysis of ``jitted(*args, **kwargs)`` (a ``jax.jit`` function), summed over the
    compiled modules. Loop bodies count once (see the module docstring)."""
    analysis = jitted.lower(*args, **kwargs).compile().cost_analysis()
    if isinstance(analysis, dict):
        analysis = [analysis]
    if not analysis:
        raise RuntimeError("XLA returned no cost analysis for this backend")
    total = Cost(0.0, 0.0, 0.0)
    for a in analysis:
        total += Cost(
            float(a.get("flops", 0.0)),
            float(a.get("bytes accessed", 0.0)),
            float(a.get("transcendentals", 0.0)),
        )
    return total


def with_loop(at_zero: Cost, at_one: Cost, trips: int) -> Cost:
    """The cost of a program with one loop of ``trips`` iterations, from its costs at 0 and 1."""
    return at_zero + (at_one - at_zero) * float(trips)


def roofline(cost: Cost, device: dict | None = None) -> dict:
    """Lower bounds (seconds) of one call on ``device`` (default :data:`H100_SXM`): compute-bound at
    each peak, memory-bound at the HBM bandwidth, and the bound ``max(compute, memory)`` for the
    BF16 tensor-core peak and for the FP32 (non-tensor) peak."""
    d = H100_SXM if device is None else device
    memory = cost.bytes_accessed / d["hbm_bytes_per_s"]
    out = {"memory_s": memory}
    for name in ("bf16_tensor_flops", "tf32_tensor_flops", "fp32_flops"):
        compute = cost.flops / d[name]
        key = name.replace("_flops", "")
        out[f"compute_{key}_s"] = compute
        out[f"bound_{key}_s"] = max(compute, memory)
    return out


def search_cost(inputs, config) -> Cost:
    """XLA's cost of the batched pose search (``nemo_jax.inference.search_batch_unchecked(inputs, config)``)
    with ``config.steps`` refinement steps, from compilations at 0 and 1 steps."""
    from nemo_jax.inference import search_batch_unchecked  # noqa: PLC0415

    at = [
        compiled_cost(search_batch_unchecked, inputs, config=dataclasses.replace(config, steps=k))
        for k in (0, 1)
    ]
    return with_loop(at[0], at[1], int(config.steps))
