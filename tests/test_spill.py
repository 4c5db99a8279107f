"""The on-disk result store (kerbtrace/spill.py) behaves as the list it replaces, and leaves no file behind."""

from __future__ import annotations

import gc
import os
import pickle
import tempfile
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from kerbtrace.spill import Chain, Merged, SpillList, pickled_chunks


@dataclass(slots=True)
class Item:
    time: float
    ip: str
    notes: list[str] = field(default_factory=list)


def _key(item: Item) -> tuple[float, str]:
    return item.time, item.ip


def temp_files() -> set[str]:
    """Open files of this process in the temp directory (a spill file shows as deleted, but open)."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(tempfile.gettempdir()):
            out.add(target)
    return out


items_strategy = st.lists(st.builds(Item, st.integers(0, 5).map(float), st.sampled_from(["a", "b", "10.0.0.2"])),
                          max_size=60)


@settings(max_examples=60, deadline=None)
@given(items_strategy, st.integers(1, 9), st.integers(1, 4), st.booleans())
def test_reads_back_as_a_sorted_list(items, threshold, chunk, keyed):
    store = SpillList(key=_key if keyed else None, threshold=threshold, chunk=chunk)
    for n, item in enumerate(items):
        item.notes.append(str(n))  # tells equal keys apart: the order among them must be kept
        store.append(item)
    expected = sorted(items, key=_key) if keyed else list(items)
    assert len(store) == len(items)
    assert store.spilled == (len(items) // threshold) * threshold
    assert list(store) == expected
    assert list(store) == expected  # twice: reading does not consume
    store.update(lambda it: it.notes.append("late"))
    for it in expected:
        it.notes.append("late")
    assert list(store) == expected
    assert [store[i] for i in range(len(store))] == expected
    if expected:
        assert store[-1] == expected[-1]
    assert store[1:4] == expected[1:4]
    assert list(store) == expected  # after the rewrite that indexing made
    assert list(pickle.loads(pickle.dumps(store))) == expected


def test_spill_file_is_removed_when_the_list_goes():
    before = temp_files()
    store = SpillList(key=_key, threshold=2)
    store.extend(Item(float(i % 3), "x") for i in range(10))
    assert store.spilled == 10
    assert temp_files() - before, "a spilled list keeps its file open"
    assert not [name for name in os.listdir(tempfile.gettempdir()) if name.endswith(".spill")], \
        "the file has no name in the temp directory while in use"
    del store
    gc.collect()
    assert temp_files() == before


def test_nothing_is_written_below_the_threshold():
    before = temp_files()
    store = SpillList(threshold=100)
    store.extend(Item(1.0, "x") for _ in range(99))
    assert store.spilled == 0 and temp_files() == before
    store.close()


def test_chain_adopts_parts_and_updates_them():
    spilled = SpillList([Item(2.0, "b"), Item(1.0, "a"), Item(3.0, "c")], key=_key, threshold=1)
    chain = Chain([[Item(0.0, "z")]])
    chain.extend(spilled)
    chain.append(Item(9.0, "y"))
    assert [i.ip for i in chain] == ["z", "a", "b", "c", "y"] and len(chain) == 5
    chain.update(lambda it: it.notes.append("seen"))
    assert all(it.notes == ["seen"] for it in chain)
    assert chain[2].ip == "b" and chain[-1].ip == "y"
    assert spilled.spilled == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(items_strategy, min_size=1, max_size=3), st.integers(1, 9))
def test_merged_parts_read_as_one_stable_sort(parts, threshold):
    """The parts of a partitioned run, each in report order (one on disk, the others in memory), read as the
    stable sort of all of them one after the other, without being copied."""
    stores = []
    for k, items in enumerate(parts):
        for n, item in enumerate(items):
            item.notes.append(f"{k}.{n}")  # tells equal keys apart: the lower part first among them
        stores.append(SpillList(items, key=_key, threshold=threshold) if k == 0 else sorted(items, key=_key))
    merged = Merged(stores, _key)
    expected = sorted((item for items in parts for item in items), key=_key)
    assert len(merged) == len(expected)
    assert list(merged) == expected and list(merged) == expected  # reading does not consume
    merged.update(lambda it: it.notes.append("late"))  # on disk too
    for it in expected:
        it.notes.append("late")
    assert list(merged) == expected
    assert [merged[i] for i in range(len(merged))] == expected and merged[1:3] == expected[1:3]
    if expected:
        assert merged[-1] == expected[-1]
    assert list(Chain([merged])) == expected
    assert list(pickle.loads(pickle.dumps(merged))) == expected


@settings(max_examples=60, deadline=None)
@given(items_strategy, st.integers(1, 9), st.integers(1, 4))
def test_adopted_chunks_read_back_as_the_list_sent(items, threshold, chunk):
    """A part's clients, pickled in chunks in its process and adopted by the parent's list: written as they are
    once the list goes to disk anyway, the same items in the same order either way, and indexable."""
    for n, item in enumerate(items):
        item.notes.append(str(n))
    chunks = list(pickled_chunks(items, chunk))
    assert [count for count, _ in chunks] == [len(items[i:i + chunk]) for i in range(0, len(items), chunk)]
    store = SpillList(threshold=threshold, chunk=chunk)
    for count, blob in chunks:
        store.adopt(count, blob, len(items))
    assert len(store) == len(items) and list(store) == items
    full, tail = (len(items) // chunk) * chunk, len(items) % chunk
    if len(items) >= threshold:  # every full chunk on disk as sent; a short last one as appended items are
        assert store.spilled == full + (tail // threshold) * threshold
    else:
        assert store.spilled == 0
    assert [store[i] for i in range(len(store))] == items
    store.update(lambda it: it.notes.append("late"))
    assert all(it.notes[-1] == "late" for it in store)


def test_merged_with_a_limit_reads_the_first_items_in_order():
    """A bounded list merged from parts (the Kerberos list of a partitioned run, capped at the inventory's
    limit): the first `limit` items of the merge, as sorting them all and cutting the list would give."""
    parts = [[1, 4, 4, 9], [2, 4, 7], [], [0, 10]]
    whole = sorted(x for part in parts for x in part)
    for limit in (0, 1, 5, len(whole), len(whole) + 3, None):
        merged = Merged(parts, key=lambda x: x, limit=limit)
        want = whole if limit is None else whole[:limit]
        assert list(merged) == want and len(merged) == len(want), limit
        assert [merged[i] for i in range(len(merged))] == want
