"""The batch matcher's min-cost flow over candidate arcs, and the dual potentials that certify
its optimum (pure code, no I/O).

The network, one unit of flow per wanted mentor:

    source -> mentee (k slots) -> need node (1) -> [pair node (1)] -> mentor (capacity) -> sink

A mentee who wants one mentor has a single slot that may take any candidate; a mentee who wants
k > 1 mentors has a node per slot, and a pair node per (mentee, mentor) so that a mentor is used
at most once per mentee. An assignment arc costs `MAX_POINTS - points`. OR-Tools solves it as
max-flow-with-min-cost: the most slots filled, then the least cost. With `fair`, each mentee's
first unit from the source earns a bonus worth more than any sum of scores, so among the maximum
flows the most mentees are covered (filling first loses nothing: an augmenting path never takes a
mentee's only mentor away, so a maximum flow covering the most mentees exists).

OR-Tools does not report duals, so `residual_graph` and `shortest_paths` derive them: the same optimum solves the
circulation in which a return arc sink -> source pays `-BIG` per unit (BIG larger than any path's
cost), and in the residual graph of an optimal circulation there is no negative cycle, so
shortest-path distances from a virtual root (0 to every node) are potentials `d` with
`cost + d[tail] - d[head] >= 0` on every residual arc. A pair the network does not have yet
(slot s, mentor m) can improve the optimum only if `MAX_POINTS - points + d[tail(s)] - d[m] < 0`;
when no eligible pair outside the network has a negative reduced cost, the flow is optimal over
all pairs (`pricing`).

Node numbers follow the tie keys (`ties`), not positions in the input, so where several optima
score the same, which one the solver returns is the seed's draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.matching.candidates import Candidates
from services.matching.scoring import MAX_POINTS


@dataclass
class FlowResult:
    chosen: np.ndarray  # indices of the candidate arcs carrying flow
    slot_potential: np.ndarray  # per slot: the potential of the node its arcs leave from
    mentor_potential: np.ndarray  # per mentor (caller's index)


def big_m(n_slots: int) -> int:
    """More than the cost of any simple path: a unit of flow is worth more than any score."""
    return MAX_POINTS * (n_slots + 1) + 1


def solve(
    cands: Candidates,
    active: np.ndarray,
    capacities: np.ndarray,
    mentee_rank: np.ndarray,
    mentor_rank: np.ndarray,
    fair: bool,
) -> FlowResult:
    """The optimal flow over the candidate arcs `active` (indices; for a mentee wanting several
    mentors, all or none of a pair's arcs) and its potentials. `mentee_rank` and `mentor_rank`
    (tie ranks per caller index) number the nodes."""
    from ortools.graph.python import min_cost_flow

    n_slots = len(cands.slot_need)
    n = len(capacities)
    if n_slots == 0:
        return FlowResult(np.zeros(0, np.int64), np.zeros(0), np.zeros(n))
    mentees, slot_pos, k_per = np.unique(cands.slot_mentee, return_inverse=True, return_counts=True)
    # mentee and mentor nodes in tie order
    mentee_order = np.argsort(mentee_rank[mentees], kind="stable")
    mentee_node_of = np.empty(len(mentees), dtype=np.int64)
    mentee_node_of[mentee_order] = np.arange(len(mentees))
    mentor_base, mentee_base = 2, 2 + n
    mentor_node = mentor_base + mentor_rank  # per mentor
    mentee_node = mentee_base + mentee_node_of[slot_pos]  # per slot
    need_base = mentee_base + len(mentees)
    multi_slot = k_per[slot_pos] > 1
    multi_ids = np.flatnonzero(multi_slot)
    multi_ids = multi_ids[np.lexsort((multi_ids, mentee_node[multi_ids]))]
    need_node = np.full(n_slots, -1, dtype=np.int64)
    need_node[multi_ids] = need_base + np.arange(len(multi_ids))
    tail_node = np.where(multi_slot, need_node, mentee_node)  # per slot
    pair_base = need_base + len(multi_ids)
    arc_slot, arc_m, arc_p = cands.arc_slot[active], cands.arc_mentor[active], cands.arc_points[active]
    multi_arc = multi_slot[arc_slot]
    pair_keys = mentee_node[arc_slot[multi_arc]] * max(1, n) + mentor_rank[arc_m[multi_arc]]
    pairs, pair_inv = np.unique(pair_keys, return_inverse=True)
    head = mentor_node[arc_m].copy()
    head[multi_arc] = pair_base + pair_inv
    tail = tail_node[arc_slot]
    # arcs in node order, so their order too is the tie keys'
    arc_order = np.lexsort((head, tail))
    tails = [tail[arc_order]]
    heads = [head[arc_order]]
    caps = [np.ones(len(arc_m), dtype=np.int64)]
    costs = [(MAX_POINTS - arc_p)[arc_order]]
    mentee_nodes = mentee_base + np.arange(len(mentees))
    k_by_node = k_per[mentee_order]
    if fair:
        bonus = big_m(n_slots)
        tails += [np.zeros(len(mentees), np.int64)]
        heads += [mentee_nodes]
        caps += [np.ones(len(mentees), np.int64)]
        costs += [np.full(len(mentees), -bonus, dtype=np.int64)]
        several = k_by_node > 1
        tails += [np.zeros(int(several.sum()), np.int64)]
        heads += [mentee_nodes[several]]
        caps += [k_by_node[several] - 1]
        costs += [np.zeros(int(several.sum()), np.int64)]
    else:
        tails += [np.zeros(len(mentees), np.int64)]
        heads += [mentee_nodes]
        caps += [k_by_node.astype(np.int64)]
        costs += [np.zeros(len(mentees), np.int64)]
    tails += [mentee_node[multi_ids]]
    heads += [need_node[multi_ids]]
    caps += [np.ones(len(multi_ids), np.int64)]
    costs += [np.zeros(len(multi_ids), np.int64)]
    tails += [pair_base + np.arange(len(pairs))]
    heads += [mentor_base + pairs % max(1, n)]
    caps += [np.ones(len(pairs), np.int64)]
    costs += [np.zeros(len(pairs), np.int64)]
    by_node = np.argsort(mentor_rank, kind="stable")  # mentor index per node
    tails += [mentor_base + np.arange(n)]
    heads += [np.ones(n, np.int64)]
    caps += [np.maximum(capacities[by_node], 0).astype(np.int64)]
    costs += [np.zeros(n, np.int64)]
    tail_all, head_all = np.concatenate(tails), np.concatenate(heads)
    cap_all, cost_all = np.concatenate(caps), np.concatenate(costs)
    solver = min_cost_flow.SimpleMinCostFlow()
    solver.add_arcs_with_capacity_and_unit_cost(
        tail_all.astype(np.int32), head_all.astype(np.int32), cap_all, cost_all
    )
    solver.set_node_supply(0, n_slots)
    solver.set_node_supply(1, -n_slots)
    status = solver.solve_max_flow_with_min_cost()
    if status != solver.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    flow = solver.flows(np.arange(len(tail_all)))
    n_nodes = int(pair_base + len(pairs))
    d = shortest_paths(np.zeros(n_nodes, dtype=np.int64),
                       *residual_graph(tail_all, head_all, cap_all, cost_all, flow, n_slots))
    used = np.zeros(len(arc_m), dtype=bool)
    used[arc_order] = flow[: len(arc_m)] > 0
    return FlowResult(
        chosen=active[used],
        slot_potential=d[tail_node].astype(np.float64),
        mentor_potential=d[mentor_node].astype(np.float64),
    )


def residual_graph(
    tail: np.ndarray,
    head: np.ndarray,
    cap: np.ndarray,
    cost: np.ndarray,
    flow: np.ndarray,
    supply: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tail, head, cost) of the residual arcs of a flow from node 0 to node 1, closed by the
    return arc sink -> source that pays -BIG a unit while places are unfilled."""
    big = big_m(supply)
    value = int(flow[head == 1].sum())
    forward, backward = flow < cap, flow > 0
    ret_tail = [1] * (value < supply) + [0] * (value > 0)
    ret_head = [0] * (value < supply) + [1] * (value > 0)
    ret_cost = [-big] * (value < supply) + [big] * (value > 0)
    return (
        np.concatenate([tail[forward], head[backward], ret_tail]).astype(np.int64),
        np.concatenate([head[forward], tail[backward], ret_head]).astype(np.int64),
        np.concatenate([cost[forward], -cost[backward], ret_cost]).astype(np.int64),
    )


def shortest_paths(
    d: np.ndarray, tail: np.ndarray, head: np.ndarray, cost: np.ndarray
) -> np.ndarray:
    """Shortest-path distances from a virtual root reaching every node at `d` (zeros: the
    potentials of an optimal flow's residual graph), by Bellman-Ford-Moore in vectorised
    rounds: each round relaxes only the arcs leaving nodes whose distance fell in the last
    one. Raises if a negative cycle shows the flow was not optimal."""
    n_nodes = len(d)
    order = np.argsort(tail, kind="stable")
    tail, head, cost = tail[order], head[order], cost[order]
    start = np.searchsorted(tail, np.arange(n_nodes + 1))
    sel = np.arange(len(tail))
    for _ in range(n_nodes + 1):
        cand = d[tail[sel]] + cost[sel]
        heads = head[sel]
        better = cand < d[heads]
        if not better.any():
            return d
        heads, cand = heads[better], cand[better]
        np.minimum.at(d, heads, cand)
        active = np.unique(heads)
        count = start[active + 1] - start[active]
        sel = np.repeat(start[active] - np.cumsum(count) + count, count) + np.arange(int(count.sum()))
    raise RuntimeError("the flow is not optimal: its residual graph has a negative cycle")
