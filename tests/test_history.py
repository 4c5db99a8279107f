"""The address history's tables: the least recently used addresses wait on disk, and the table behaves exactly
as one kept wholly in memory (same lists, same order, same evictions)."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest

from kerbtrace.exchanges import history
from kerbtrace.exchanges.client import KdcExchange


class _InMemory(OrderedDict):
    """The table as it is without a disk: every list in one OrderedDict, least recently used first."""

    def __init__(self, limit: int, per_address: int) -> None:
        super().__init__()
        self.limit, self.per_address, self.evicted = limit, per_address, 0

    def add(self, key: str, item: object) -> None:
        value = self.get(key)
        if value is None:
            self[key] = [item]
            if len(self) > self.limit:
                self.popitem(last=False)
                self.evicted += 1
            return
        self.move_to_end(key)
        value.append(item)
        if len(value) > self.per_address:
            del value[0]


@pytest.mark.parametrize("seed", range(6))
def test_a_table_with_cold_addresses_on_disk_behaves_as_one_in_memory(monkeypatch, seed):
    monkeypatch.setattr(history, "COLD_BATCH", 3)
    rng = random.Random(seed)
    limit = rng.choice((12, 40, 1000))
    table, model = history._Lru(limit, 4), _InMemory(limit, 4)
    table.hot_limit = 5
    keys = [f"10.0.0.{i}" for i in range(rng.choice((20, 60)))]
    went_cold = 0
    for step in range(3000):
        key = rng.choice(keys)
        op = rng.random()
        if op < 0.7:
            table.add(key, (key, step))
            model.add(key, (key, step))
        elif op < 0.9:
            assert table.get(key, ()) == model.get(key, ())
        else:
            assert table.pop(key, None) == model.pop(key, None)
        went_cold = max(went_cold, len(table.cold))
        assert len(table.hot) < table.hot_limit + history.COLD_BATCH
    assert went_cold > 0  # the disk was used
    assert list(table) == list(model)
    assert {k: table.get(k) for k in table} == dict(model)
    assert table.evicted == model.evicted
    assert limit > len(keys) or table.evicted > 0  # small limits were reached


def test_an_exchange_waiting_for_its_reply_comes_back_as_the_same_object(monkeypatch):
    """A request the Kerberos pairing still holds stays in memory: the reply completes the object the history
    gives back."""
    monkeypatch.setattr(history, "COLD_BATCH", 2)
    waiting = KdcExchange("10.0.0.1", "10.0.0.9")
    answered = KdcExchange("10.0.0.1", "10.0.0.9")
    table = history._Lru(100, 8, pending=lambda: {id(waiting)})
    table.hot_limit = 1
    table.add("10.0.0.1", waiting)
    table.add("10.0.0.1", answered)
    for i in range(2, 5):
        table.add(f"10.0.0.{i}", KdcExchange(f"10.0.0.{i}", "10.0.0.9"))
    assert "10.0.0.1" in table.cold and "10.0.0.1" not in table.hot
    back = table.pop("10.0.0.1")
    assert back[0] is waiting and back[1] is not answered and back[1] == answered
