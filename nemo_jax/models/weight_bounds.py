"""What a weight file may make its reader allocate, checked before any array is read or viewed.

One rule for ``.pth`` / ``.pt`` (:mod:`nemo_jax.models.torch_pickle`), ``.npz`` and ``.safetensors``
(:mod:`nemo_jax.models.convert`):

* every array lies inside the bytes the file stores for it. A torch tensor is a strided view of a flat
  storage: its storage offset, sizes and strides must be non-negative integers (torch never writes
  negative ones), and its lowest element index (the offset) and highest (``offset + sum((size_i - 1)
  * stride_i)``) must lie inside the storage; a safetensors tensor's byte range lies inside the file's
  data section and is exactly its shape's size; an ``.npz`` member's header claims no more bytes than
  the member holds;
* an empty array (a zero size) cannot claim absurd other axes either: the product of its non-zero
  sizes is at most the file's size in bytes;
* all arrays the reader allocates for one file (storages read, tensors materialised from them, zip
  members inflated) total at most :data:`MAX_EXPANSION` times the file's size. An ordinary checkpoint
  needs about twice its size (each storage once, each tensor once); the slack admits tensors sharing
  one storage (tied weights), zero-stride (expanded) tensors and deflated zip members, while a file
  of a few hundred bytes can no longer claim gigabytes.

A refusal is a :class:`WeightFileError` (a ``ValueError``) whose one-line message names the file and
the array: what a command prints as is, without a traceback.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

#: All arrays read from one weight file total at most this many times the file's size in bytes.
MAX_EXPANSION = 4
#: numpy's limit on the number of axes.
MAX_DIMS = 64


class WeightFileError(ValueError):
    """A weight file that cannot be used as it is: unreadable, hostile (a foreign pickle global, an array
    outside the file), or not the checkpoint of the architecture asked for. Its message is one line
    naming the file (and the config field that named it, where one did)."""


class ArrayBudget:
    """The bytes still allowed for arrays of one file (:data:`MAX_EXPANSION` times its size)."""

    def __init__(self, file_size: int):
        self.file_size = int(file_size)
        self.limit = MAX_EXPANSION * self.file_size
        self.used = 0

    def take(self, nbytes: int, what: str) -> None:
        """Counts ``nbytes`` for ``what`` (e.g. "tensor 'conv1.weight' of size (64, 3, 7, 7)");
        ValueError before the allocation when the file's budget would be exceeded."""
        if nbytes > self.limit - self.used:
            raise ValueError(
                f"{what} needs {nbytes} bytes, more than the file can hold: the arrays of a weight file "
                f"may total at most {MAX_EXPANSION} times its size ({self.file_size} bytes), {self.used} "
                "already used"
            )
        self.used += nbytes


def as_index(value, what: str) -> int:
    """``value`` as a Python int (a pickled int or numpy integer; not a bool, float or string)."""
    if isinstance(value, bool):
        raise ValueError(f"{what} is a bool, not an integer")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{what} is {type(value).__name__} {value!r:.40}, not an integer") from None


def as_shape(values, what: str) -> tuple[int, ...]:
    """A sequence of non-negative ints (at most :data:`MAX_DIMS`)."""
    if not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise ValueError(f"{what} is {type(values).__name__}, not a sequence of integers")
    if len(values) > MAX_DIMS:
        raise ValueError(f"{what} has {len(values)} axes (numpy allows {MAX_DIMS})")
    return tuple(as_index(v, what) for v in values)


def check_empty(shape: tuple[int, ...], file_size: int, what: str) -> None:
    """An empty array's other axes: the product of its non-zero sizes is at most ``file_size``."""
    nonzero = math.prod(n for n in shape if n > 0)
    if nonzero > file_size:
        raise ValueError(
            f"{what} is empty but its other axes claim {nonzero} elements, more than the file holds"
        )


def check_strided(
    offset, size, stride, storage_numel: int, file_size: int, what: str
) -> tuple[int, tuple[int, ...], tuple[int, ...], int]:
    """Checks a strided view of a flat storage of ``storage_numel`` elements (all in elements).

    Args:
      offset, size, stride: as pickled (any Python values; checked here).
      storage_numel: the elements the storage really holds (read from the file).
      file_size: the file's size in bytes (bounds an empty view's other axes).
      what: the view's name for messages (e.g. "tensor 'conv1.weight'").

    Returns:
      ``(offset, size, stride, numel)`` as Python ints; strides of axes of size <= 1 set to 0 (they
      never move, and a huge one would overflow numpy's byte strides).

    Raises:
      ValueError naming ``what``: non-integers, a negative offset, size or stride, sizes and strides of
      different lengths, or an element index outside the storage.
    """
    offset = as_index(offset, f"{what}: storage offset")
    size = as_shape(size, f"{what}: size")
    stride = as_shape(stride, f"{what}: stride")
    if len(size) != len(stride):
        raise ValueError(f"{what}: size {size} and stride {stride} have different lengths")
    if offset < 0:
        raise ValueError(f"{what}: negative storage offset {offset}")
    if any(n < 0 for n in size):
        raise ValueError(f"{what}: negative size {size}")
    if any(s < 0 for s in stride):
        raise ValueError(f"{what}: negative stride {stride} (torch never writes one)")
    numel = math.prod(size)
    if numel == 0:
        check_empty(size, file_size, what)
        return offset, size, tuple(0 for _ in stride), 0
    stride = tuple(s if n > 1 else 0 for n, s in zip(size, stride, strict=True))
    highest = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if highest >= storage_numel:
        raise ValueError(
            f"{what} of size {size}, stride {stride}, offset {offset} runs past its storage "
            f"(element {highest} of {storage_numel})"
        )
    return offset, size, stride, numel
