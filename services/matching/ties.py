"""Seeded tie-breaking for the batch matcher (pure code, no I/O).

Many people have identical or near-identical profiles (a blank profile is the extreme), so many
pairs score the same. Whatever decides between them must not be a person's position in a list:
the first registered would always win. Every person instead gets a key drawn from the run's seed
and their id (a keyed hash), so the same seed gives the same answer whatever the input order, and
another seed redraws every tie. The run records its seed.

Two uses: `order` (a permutation of people by key, where a solver or a sort would otherwise fall
back to the index), and `directions` (a short random unit vector per person; the dot product of a
mentee's and a mentor's, scaled far below one point, is added to their score where shortlists are
drawn, so equal scores are ranked differently for different mentees instead of every mentee
listing the same few mentors).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

TIE_DIMS = 8  # length of the direction vectors: enough for identical people to spread out

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def keys(ids: Sequence[str], seed: int) -> np.ndarray:
    """A 64-bit key per id, from a hash keyed with the seed (uint64)."""
    secret = int(seed).to_bytes(16, "little", signed=True)
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8, key=secret).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )


def order(person_keys: np.ndarray) -> np.ndarray:
    """Indices sorted by key: the order people are taken in wherever the result would otherwise
    depend on their position."""
    return np.argsort(person_keys, kind="stable")


def rank(person_keys: np.ndarray) -> np.ndarray:
    """Each person's position in `order`."""
    out = np.empty(len(person_keys), dtype=np.int64)
    out[order(person_keys)] = np.arange(len(person_keys))
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit value from each input (vectorised)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (x ^ (x >> np.uint64(31))) & _MASK


def directions(person_keys: np.ndarray, dims: int = TIE_DIMS) -> np.ndarray:
    """(len(keys) x dims) unit vectors drawn from the keys (float64)."""
    if not len(person_keys):
        return np.zeros((0, dims))
    with np.errstate(over="ignore"):
        lanes = person_keys[:, None] + np.arange(1, dims + 1, dtype=np.uint64)[None, :] * np.uint64(
            0x9E3779B97F4A7C15
        )
    uniform = (_mix(lanes) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    vectors = uniform * 2.0 - 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
