"""The order of the training samples (evss.train.sampling): a function of the seed and the step,
split between the processes."""

from __future__ import annotations

from evss import train


def test_sample_order_is_a_function_of_seed_and_step():
    data = list(range(10))
    view = train.ByPosition(data, seed=3)
    epoch0 = sorted(view[p] for p in range(10))
    assert epoch0 == data and [view[p] for p in range(10, 20)] != [view[p] for p in range(10)]
    ranks = [list(train.StepPositions(start=2, stop=4, batch_size=3, rank=r, world_size=2)) for r in (0, 1)]
    assert ranks == [[12, 13, 14, 18, 19, 20], [15, 16, 17, 21, 22, 23]]  # disjoint slices of each step
    fixed = train.StepPositions(start=5, stop=7, batch_size=2, fixed=True)
    assert list(fixed) == [0, 1, 0, 1]
