"""The matcher's fast paths give exactly what the plain ones give (pure matching domain).

Pricing's float32 filter (`pricing._maybe_sparse`) is a sound shortcut: on any block it keeps
exactly the cells the float64 test over the whole block (`pricing._maybe_dense`) keeps, so no
pair that could have a negative reduced cost is ever skipped. The shortlist's one-key sort
(`candidates._row_order`) orders entries as `np.lexsort` did (the tie-breaking depends on it)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching.blocks import ELIGIBLE_FLOOR, POINTS_SLACK
from services.matching.pricing import (
    Duals,
    _fits32,
    _lowest,
    _maybe_dense,
    _maybe_sparse,
)
from services.matching.table import PENALTY


def _block(seed: int, rows: int, cols: int, big: float):
    """Float32 scores (some on or next to a tenth's rounding boundary, some ineligible) and
    integer potentials carrying a big-M on both sides, set so that a fair share of the cells
    land near the limit."""
    rng = np.random.default_rng(seed)
    tenths = rng.integers(0, 1001, size=(rows, cols))
    jitter = rng.choice([0.0, -0.05, 0.05, -0.0501, 0.0499, 1e-4, -1e-4], size=(rows, cols))
    vals = np.clip(tenths / 10 + jitter, 0, 100).astype(np.float32)
    vals[rng.random((rows, cols)) < 0.1] = -PENALTY
    # reduced cost of a cell: a + offset - points, with points of order 0..1000
    a = (rng.integers(700, 1300, size=rows) - big).astype(np.float64)
    offset = (rng.integers(-300, 300, size=cols) + big).astype(np.float64)
    return vals, a, offset


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 40),
    cols=st.integers(1, 60),
    big=st.sampled_from([0.0, 21_919_001.0, 109_000_001.0]),
    ahead=st.sampled_from([0.0, 10.0]),
    limit=st.sampled_from([0.0, -0.5, 3.0]),
)
def test_the_float32_filter_keeps_exactly_the_cells_of_the_float64_test(
    seed, rows, cols, big, ahead, limit
):
    vals, a, offset = _block(seed, rows, cols, big)
    duals = Duals(const=1000.0, alpha=1.0, slot_offset=a, mentor_offset=offset)
    i_d, j_d, base_d = _maybe_dense(
        duals, np.zeros(rows, np.int64), vals, a, offset, np.arange(cols), limit, ahead, None
    )
    shift = float(np.round(offset.min()))
    assert _fits32(a + shift, offset - shift)
    i_s, j_s = _maybe_sparse(vals, a + shift, offset - shift, limit, ahead)
    assert sorted(zip(i_s.tolist(), j_s.tolist())) == sorted(zip(i_d.tolist(), j_d.tolist()))
    assert np.array_equal(base_d, a[i_d] + offset[j_d])


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), big=st.sampled_from([0.0, 21_919_001.0]))
def test_no_cell_left_out_by_the_filter_could_have_a_negative_reduced_cost(seed, big):
    vals, a, offset = _block(seed, 30, 50, big)
    shift = float(np.round(offset.min()))
    i, j = _maybe_sparse(vals, a + shift, offset - shift, 0.0, 0.0)
    kept = np.zeros(vals.shape, dtype=bool)
    kept[i, j] = True
    # every cell, in float64 from the unshifted potentials
    least = _lowest(a[:, None] + offset[None, :], vals)
    could = (vals > ELIGIBLE_FLOOR) & (least < 0.0)
    assert not (could & ~kept).any()
    assert not (kept & ~could).any()


def test_potentials_too_large_for_float32_take_the_float64_path():
    assert not _fits32(np.array([2.0**21]), np.array([0.0]))
    assert not _fits32(np.array([0.0]), np.array([-(2.0**21)]))
    assert _fits32(np.array([1000.0]), np.array([-250.0]))
    assert not _fits32(np.zeros(0), np.zeros(3))


def test_points_slack_covers_the_float32_scores():
    # the filter's margin is on top of POINTS_SLACK, which must stay positive for the bound
    assert POINTS_SLACK > 0.5


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 30),
    n=st.sampled_from([1, 2, 7, 5000, 20000, 2**20, 2**30]),
)
def test_the_shortlists_row_order_is_lexsorts(seed, rows, n):
    from services.matching.candidates import _row_order

    rng = np.random.default_rng(seed)
    size = int(rng.integers(0, 400))
    flat = np.unique(rng.integers(0, rows * n, size=size))  # row-major, as `_best` finds them
    j_idx, m_idx = np.divmod(flat, n)
    values = rng.choice(
        np.array([-0.0, 0.0, -0.5, 1e-3, 37.25, 37.25, 100.004, -1e4], np.float32), size=len(flat)
    ) + rng.choice(np.array([0, 0, 1e-7], np.float32), size=len(flat))
    values = values.astype(np.float32)
    expected = np.lexsort((-values, j_idx))
    assert np.array_equal(_row_order(j_idx, m_idx, values, rows, n), expected)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.sampled_from([1, 3, 50]), per_mentor=st.integers(0, 4))
def test_the_first_network_takes_each_slots_best_and_each_mentors_best(seed, n, per_mentor):
    from services.matching.assignment import _first_network
    from services.matching.candidates import Candidates

    rng = np.random.default_rng(seed)
    slots = int(rng.integers(0, 30))
    start = np.concatenate([[0], np.cumsum(rng.integers(0, 8, size=slots))]).astype(np.int64)
    arcs = int(start[-1])
    pts = rng.choice([0, 500, 500, 999, 1000], size=arcs).astype(np.int64)  # many ties
    cands = Candidates(
        np.arange(slots, dtype=np.int64), [None] * slots, np.full(slots, -1), start,
        rng.integers(0, n, size=arcs).astype(np.int64), pts, np.zeros(slots, np.int64),
    )
    got = _first_network(cands, 2, per_mentor, n)
    expected = np.arange(arcs) - np.repeat(start[:-1], np.diff(start)) < 2
    order = np.lexsort((-pts, cands.arc_mentor))  # by mentor, points descending, arc order
    by_mentor = cands.arc_mentor[order]
    rank = np.arange(arcs) - np.searchsorted(by_mentor, by_mentor)
    if per_mentor:
        expected[order[rank < per_mentor]] = True
    assert np.array_equal(got, expected)
