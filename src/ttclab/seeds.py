"""The one seed rule: sample ``j`` of a request seeded ``s`` gets ``(s + j) mod (2**31 - 1)``.

Engines, the sampling runner and online pipelines all use :func:`sample_seed`, so a request for ``n``
samples with seed ``s`` gives the same samples as ``n`` single requests with seeds ``s, s + 1, ...``.
:func:`derive_seed` is the base seed of one question's samples within a run.
"""

from __future__ import annotations

import hashlib
from typing import overload

#: Seeds stay below 2**31 - 1 (what every engine accepts as a non-negative 32-bit seed).
SEED_MODULUS = 2**31 - 1


@overload
def sample_seed(base: int, j: int) -> int: ...
@overload
def sample_seed(base: None, j: int) -> None: ...
def sample_seed(base: int | None, j: int) -> int | None:
    """The seed of sample ``j`` of a request whose seed is ``base`` (None: unseeded)."""
    return None if base is None else (base + j) % SEED_MODULUS


def derive_seed(base_seed: int | None, key: str, sample_index: int) -> int:
    """Seed of sample ``sample_index`` of ``key`` (a question id) in a run seeded ``base_seed``.

    A hash of (run seed, key) plus the sample index by :func:`sample_seed`: consecutive sample indices
    get consecutive seeds.
    """
    digest = hashlib.sha256(f"{base_seed}:{key}".encode()).digest()
    return sample_seed(int.from_bytes(digest[:8], "little"), sample_index)


__all__ = ["SEED_MODULUS", "derive_seed", "sample_seed"]
