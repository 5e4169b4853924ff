"""reference.data.sampler: SortaGrad, deterministic shuffles, rank-count-independent batches."""
from collections import Counter

import numpy as np
import pytest

from reference.data.sampler import TrainBatches, eval_batches

N = 203  # not a multiple of any batch size used below


@pytest.fixture(scope="module")
def durations():
    rng = np.random.default_rng(0)
    d = {i: float(x) for i, x in enumerate(np.round(rng.uniform(1.0, 16.0, N), 2))}
    d[5] = d[17] = d[40]  # ties are broken by index
    return d


def _sorted(d):
    return sorted(d, key=lambda i: (d[i], i))


def _tb(d, batch=8, world=1, seed=1, **kw):
    return TrainBatches(durations=d, batch_per_card=batch, world_size=world, seed=seed, **kw)


def test_counts(durations):
    tb = _tb(durations, batch=8, world=2)
    assert tb.global_batch == 16
    assert tb.steps_per_epoch == N // 16 == 12
    assert tb.dropped_per_epoch == N - 12 * 16 == 11


def test_sortagrad_first_epoch_is_length_sorted(durations):
    tb = _tb(durations, batch=16)
    batches = tb.global_batches(1)
    flat = [i for b in batches for i in b]
    order = _sorted(durations)
    assert flat == order[:len(flat)]
    assert len(flat) == tb.steps_per_epoch * 16
    assert order[len(flat):] == order[-tb.dropped_per_epoch:]  # the longest are the ones dropped


def test_without_sortagrad_the_first_epoch_is_shuffled(durations):
    tb = _tb(durations, batch=16, sortagrad=False)
    flat = [i for b in tb.global_batches(1) for i in b]
    assert flat != _sorted(durations)[:len(flat)]


@pytest.mark.parametrize("epoch", [1, 2, 3, 7])
def test_every_epoch_covers_each_index_at_most_once(durations, epoch):
    tb = _tb(durations, batch=8, world=2)
    batches = tb.global_batches(epoch)
    assert len(batches) == tb.steps_per_epoch
    assert all(len(b) == 16 for b in batches)
    flat = [i for b in batches for i in b]
    counts = Counter(flat)
    assert max(counts.values()) == 1
    assert set(flat) <= set(durations)
    assert len(set(durations) - set(flat)) == tb.dropped_per_epoch


def test_later_epochs_shuffled_and_deterministic(durations):
    tb = _tb(durations, batch=16)
    e2 = tb.global_batches(2)
    assert e2 == _tb(durations, batch=16).global_batches(2)  # fresh object, same result
    assert e2 == tb.global_batches(2)  # repeated call, same result
    assert e2 != tb.global_batches(1)
    assert e2 != tb.global_batches(3)
    assert e2 != _tb(durations, batch=16, seed=2).global_batches(2)
    # batch order is shuffled, not length order
    mean_len = [np.mean([durations[i] for i in b]) for b in e2]
    assert mean_len != sorted(mean_len)


def test_shuffle_stays_within_length_buckets(durations):
    # each global batch holds utterances from one bucket of bucket_batches sorted batches
    tb = _tb(durations, batch=4, world=2, bucket_batches=3)
    rank = {i: r for r, i in enumerate(_sorted(durations))}
    bucket = 8 * 3
    for epoch in (2, 3):
        for b in tb.global_batches(epoch):
            assert len({rank[i] // bucket for i in b}) == 1


def test_bucket_of_one_batch_keeps_batches_length_homogeneous(durations):
    tb = _tb(durations, batch=16, bucket_batches=1)
    sorted_batches = {tuple(sorted(b)) for b in tb.global_batches(1)}
    assert {tuple(sorted(b)) for b in tb.global_batches(4)} == sorted_batches


@pytest.mark.parametrize("epoch", [1, 2, 5])
def test_two_ranks_of_8_equal_one_rank_of_16(durations, epoch):
    one = _tb(durations, batch=16, world=1)
    two = _tb(durations, batch=8, world=2)
    r0 = two.rank_batches(epoch, 0)
    r1 = two.rank_batches(epoch, 1)
    ref = one.rank_batches(epoch, 0)
    assert len(r0) == len(r1) == len(ref) == one.steps_per_epoch
    assert [a + b for a, b in zip(r0, r1)] == ref
    assert all(len(b) == 8 for b in r0 + r1)
    assert not set(i for b in r0 for i in b) & set(i for b in r1 for i in b)


def test_four_ranks_of_4(durations):
    four = _tb(durations, batch=4, world=4)
    one = _tb(durations, batch=16, world=1)
    shards = [four.rank_batches(3, r) for r in range(4)]
    assert [sum(parts, []) for parts in zip(*shards)] == one.rank_batches(3, 0)


def test_rank_batches_start_step_skips(durations):
    tb = _tb(durations, batch=8, world=2)
    full = tb.rank_batches(2, 1)
    assert tb.rank_batches(2, 1, start_step=5) == full[5:]
    assert tb.rank_batches(2, 1, start_step=0) == full
    assert tb.rank_batches(2, 1, start_step=tb.steps_per_epoch) == []


def test_list_durations_work_like_a_dict(durations):
    as_list = [durations[i] for i in range(N)]
    a = TrainBatches(durations=as_list, batch_per_card=8, world_size=1, seed=3)
    b = _tb(durations, batch=8, seed=3)
    assert a.global_batches(1) == b.global_batches(1)
    assert a.global_batches(2) == b.global_batches(2)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_eval_batches_cover_every_index_exactly_once(durations, world):
    shards = [eval_batches(durations, 16, r, world) for r in range(world)]
    flat = [i for s in shards for b in s for i in b]
    assert sorted(flat) == sorted(durations)  # no drops, no padding duplicates
    assert len(flat) == N


def test_eval_batch_composition_is_independent_of_world_size(durations):
    def compositions(world):
        return sorted(tuple(b) for r in range(world) for b in eval_batches(durations, 16, r, world))
    ref = compositions(1)
    assert len(ref) == -(-N // 16)
    for world in (2, 3, 4, 13, 20):
        assert compositions(world) == ref
    # batches are length-sorted runs
    order = _sorted(durations)
    assert [i for b in eval_batches(durations, 16, 0, 1) for i in b] == order


def test_eval_batches_round_robin(durations):
    all_batches = eval_batches(durations, 10, 0, 1)
    assert eval_batches(durations, 10, 1, 3) == all_batches[1::3]
    assert eval_batches(durations, 10, 7, 30) == [all_batches[7]]
    assert eval_batches(durations, 10, 25, 30) == []  # more ranks than batches
