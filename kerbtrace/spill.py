"""Results kept on disk past a threshold, so memory does not grow with the number of clients a capture reports.

A 1 GB capture reports over ten thousand clients at about 13 KB each in memory (timeline, findings,
evidence), and some 100,000 Kerberos messages; 10 GB ten times as many. `SpillList` keeps the first
`THRESHOLD` items in memory (a capture with fewer clients pays nothing), then writes them in chunks to an
anonymous temporary file in the system's temp directory, which the operating system removes when the file
is closed or the process ends, whatever ends it. The reports read the items back a chunk at a time, in order.

pickle (standard library) serialises: the results are plain dataclasses, and a chunk stores the strings its
items share once. Dataclasses are reduced to their constructor's arguments (`_Pickler`), half the time of
their default `__getstate__` path. A result holds what the JSON report prints: no ticket, hash or key.
"""

from __future__ import annotations

import heapq
import io
import itertools
import os
import pickle
import sys
import tempfile
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields, is_dataclass
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")

#: Items kept in memory before the first spill (2,000 client results: about 26 MB); the environment variable
#: KERBTRACE_SPILL_AFTER sets another (tests force a tiny one).
THRESHOLD = int(os.environ.get("KERBTRACE_SPILL_AFTER", "2000"))
#: Items per pickled chunk: while reading, one chunk per spill (run) is in memory.
CHUNK = 16
NEVER = sys.maxsize  # a threshold that keeps everything in memory


def _same_items(self: Sequence, other: object) -> bool:
    """As a list compares: the same items in the same order (against any sequence)."""
    return (isinstance(other, Sequence) and len(self) == len(other)
            and all(a == b for a, b in zip(self, other, strict=True)))


class SpillList(Sequence[T]):
    """A list that only grows, kept in memory up to `threshold` items and on disk past it.

    With a `key`, it reads back in the order of the key (stable: equal keys in the order appended), as
    `list.sort(key=...)` would leave it: each spill is sorted, and reading merges them. `update(fn)` changes
    every item in place: at once for those in memory, as they are read for those on disk. Indexing reads the
    chunk that holds the item (after one rewrite into a single run, if reading needs a merge)."""

    def __init__(self, items: Iterable[T] = (), *, key: Callable[[T], Any] | None = None,
                 threshold: int | None = None, chunk: int = CHUNK) -> None:
        self.key = key
        self.threshold = max(1, THRESHOLD if threshold is None else threshold)
        self.chunk = max(1, chunk)
        self._mem: list[T] = []
        self._file = None
        self._bounds = array("q")  # each chunk's first byte in the file, then the end of the last
        self._runs: list[tuple[int, int]] = []  # (first chunk, chunks) of each spill, in the order written
        self._fixes: list[Callable[[T], object]] = []  # `update`s still to apply to the items read from disk
        self._spilled = 0
        self._cached: tuple[int, list[T]] = (-1, [])
        self.extend(items)

    @property
    def spilled(self) -> int:
        """How many items are on disk."""
        return self._spilled

    def append(self, item: T) -> None:
        self._mem.append(item)
        if len(self._mem) >= self.threshold:
            self._spill()

    def extend(self, items: Iterable[T]) -> None:
        for item in items:
            self.append(item)

    def update(self, fn: Callable[[T], object]) -> None:
        """Apply `fn` to every item (it changes the item in place; its return value is ignored)."""
        for item in self._mem:
            fn(item)
        if self._spilled:
            self._fixes.append(fn)
            self._cached = (-1, [])

    def close(self) -> None:
        """Forget every item and remove the file (also done when the list is garbage)."""
        if self._file is not None:
            self._file.close()
        self._file, self._mem, self._runs, self._spilled = None, [], [], 0
        self._bounds, self._fixes, self._cached = array("q"), [], (-1, [])

    def __len__(self) -> int:
        return self._spilled + len(self._mem)

    def __iter__(self) -> Iterator[T]:
        if self.key is not None:
            self._mem.sort(key=self.key)
        if not self._runs:
            return iter(self._mem)
        f, bounds, fixes = self._file, self._bounds, tuple(self._fixes)
        runs = [_read_run(f, bounds, fixes, first, count) for first, count in self._runs]
        if self.key is None or (len(runs) == 1 and not self._mem):
            return itertools.chain(*runs, self._mem)
        return heapq.merge(*runs, self._mem, key=self.key)  # ties: the earlier spill first, as a stable sort

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("SpillList index out of range")
        if len(self._runs) > 1 or (self._runs and self._mem and self.key is not None):
            self._rewrite()
        if index >= self._spilled:
            if self.key is not None:
                self._mem.sort(key=self.key)
            return self._mem[index - self._spilled]
        number = index // self.chunk  # one run, its chunks full but the last
        if self._cached[0] != number:
            self._cached = (number, _read(self._file, self._bounds, self._fixes, number))
        return self._cached[1][index % self.chunk]

    __eq__ = _same_items

    def __reduce__(self):
        # Sent to another process (`--jobs`, a cluster): the items themselves, in order; the receiver keeps
        # them in a list of its own, spilled past its threshold.
        return _rebuild, (list(self),)

    def __del__(self) -> None:
        if self._file is not None:
            self._file.close()

    def adopt(self, count: int, blob: bytes, total: int) -> None:
        """`count` items pickled elsewhere as one chunk (`pickled_chunks`, a part of a partitioned run), of the
        `total` this list will hold: written as they are when the list goes to disk anyway (past its threshold)
        and the chunk is full, with nothing in memory or to update; else read into memory. The parent of a
        partitioned run then neither unpickles nor pickles again the clients of the other parts."""
        if total < self.threshold or count != self.chunk or self.key is not None or self._mem or self._fixes:
            self.extend(pickle.loads(blob))
        else:
            self._append_chunks([(count, blob)], new_run=False)

    def _spill(self) -> None:
        items = self._mem
        if self.key is not None:
            items.sort(key=self.key)
        self._append_chunks(pickled_chunks(items, self.chunk), new_run=True)
        self._mem = []

    def _append_chunks(self, chunks: Iterable[tuple[int, bytes]], *, new_run: bool) -> None:
        """Pickled chunks (count, bytes) written at the end of the file: a run of their own (a sorted spill), or
        the last run continued when they follow it."""
        if self._file is None:
            self._file = _spill_file()
            self._bounds.append(0)
        f, bounds = self._file, self._bounds
        first = len(bounds) - 1
        f.seek(bounds[-1])
        for count, blob in chunks:
            f.write(blob)
            bounds.append(f.tell())
            self._spilled += count
        f.flush()  # read back with `_pread`, past the file object's buffer
        written = len(bounds) - 1 - first
        if not new_run and self._runs and sum(self._runs[-1]) == first:
            self._runs[-1] = (self._runs[-1][0], self._runs[-1][1] + written)
        else:
            self._runs.append((first, written))

    def _rewrite(self) -> None:
        """Everything into one run, in order, in a new file (for indexing: item i is in chunk i // chunk)."""
        merged = iter(self)  # reads the current file, which it keeps open until it is done
        self._file, self._bounds, self._runs, self._spilled = None, array("q"), [], 0
        self._append_chunks(pickled_chunks(merged, self.chunk), new_run=True)
        self._mem, self._fixes, self._cached = [], [], (-1, [])


def _pread(f, offset: int, length: int) -> bytes:
    """`length` bytes at `offset`, leaving the file's position alone: a process forked to write part of the
    report (`kerbtrace.aside`) reads the same files at the same time, and a forked process shares the position.
    Written bytes are flushed before they are read this way."""
    if _HAS_PREAD:
        return os.pread(f.fileno(), length, offset)
    f.seek(offset)  # pragma: no cover - a system without pread (Windows), where nothing is forked
    return f.read(length)


_HAS_PREAD = hasattr(os, "pread")


def _spill_file():
    """An anonymous temporary file (no name while in use; the OS frees it when closed or the process ends)."""
    return tempfile.TemporaryFile(prefix="kerbtrace-", suffix=".spill")


def _read(f, bounds: array, fixes: Sequence[Callable], number: int) -> list:
    """The items of chunk `number`, with the `update`s made since they were written."""
    start = bounds[number]
    items = pickle.loads(_pread(f, start, bounds[number + 1] - start))
    for fn in fixes:
        for item in items:
            fn(item)
    return items


def _read_run(f, bounds: array, fixes: Sequence[Callable], first: int, count: int) -> Iterator:
    for number in range(first, first + count):
        yield from _read(f, bounds, fixes, number)


def pickled_chunks(items: Iterable[T], chunk: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """(count, bytes) of `items` pickled `chunk` at a time as a `SpillList` writes them, for `SpillList.adopt`
    in another process."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == chunk:
            yield chunk, _dumps(batch)
            batch = []
    if batch:
        yield len(batch), _dumps(batch)


def _rebuild(items: list) -> SpillList:
    return SpillList(items)


class Chain(Sequence[T]):
    """Sequences read one after the other as one (the results of several captures): `extend` adds a
    sequence without copying it, `append` adds an item to a list at the end."""

    def __init__(self, parts: Iterable[Sequence[T]] = ()) -> None:
        self.parts: list[Sequence[T]] = []
        for part in parts:
            self.extend(part)

    def extend(self, items: Iterable[T]) -> None:
        self.parts.append(items if isinstance(items, Sequence) else list(items))

    def append(self, item: T) -> None:
        if not self.parts or type(self.parts[-1]) is not list:
            self.parts.append([])
        self.parts[-1].append(item)  # type: ignore[attr-defined]

    def update(self, fn: Callable[[T], object]) -> None:
        """`fn` on every item, in place (see `SpillList.update`)."""
        _update_parts(self.parts, fn)

    def sort(self, *, key: Callable[[T], Any]) -> None:
        """In place (callers that sort a result made in memory); the parts become one list."""
        self.parts = [sorted(self, key=key)]

    def __len__(self) -> int:
        return sum(len(part) for part in self.parts)

    def __iter__(self) -> Iterator[T]:
        return itertools.chain.from_iterable(self.parts)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        for part in self.parts:
            if 0 <= index < len(part):
                return part[index]
            index -= len(part)
        raise IndexError("Chain index out of range")

    __eq__ = _same_items

    def __repr__(self) -> str:
        return f"Chain({len(self)} items in {len(self.parts)} parts)"


class Merged(Sequence[T]):
    """Sequences each in the order of `key`, read as one in that order without copying them (the parts of a
    partitioned run: writing their clients into one more spilled list cost a pickling and an unpickling of each
    on the parent's critical path). Ties: the earlier sequence first, as a stable sort of them one after the
    other. Each pass merges again; indexing reads up to the item (the reports only iterate)."""

    def __init__(self, parts: Iterable[Sequence[T]], key: Callable[[T], Any], limit: int | None = None) -> None:
        self.parts = list(parts)
        self.key = key
        self.limit = limit  # at most this many: the first in that order (a bounded list's cap)

    def update(self, fn: Callable[[T], object]) -> None:
        """`fn` on every item, in place (see `SpillList.update`)."""
        _update_parts(self.parts, fn)

    def __len__(self) -> int:
        total = sum(len(part) for part in self.parts)
        return total if self.limit is None else min(total, self.limit)

    def __iter__(self) -> Iterator[T]:
        merged = iter(self.parts[0]) if len(self.parts) == 1 else heapq.merge(*self.parts, key=self.key)
        return merged if self.limit is None else itertools.islice(merged, self.limit)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return list(itertools.islice(self, *index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("Merged index out of range")
        return next(itertools.islice(self, index, None))

    __eq__ = _same_items

    def __repr__(self) -> str:
        return f"Merged({len(self)} items from {len(self.parts)} parts)"


def _update_parts(parts: Iterable[Sequence], fn: Callable[[Any], object]) -> None:
    """`fn` on every item of `parts` in place: a spilled list (or a sequence of them) as it is read."""
    for part in parts:
        if isinstance(part, SpillList | Chain | Merged):
            part.update(fn)
        else:
            for item in part:
                fn(item)


class SpillStore:
    """Objects kept on disk by key until taken back: the state of clients that have gone quiet while their
    exchange is still open (`exchanges.correlator`), and the least recently used addresses of the address history
    (`exchanges.history`), which would otherwise grow with the clients a capture holds per idle timeout. Each
    `put` pickles the object to the end of an anonymous temporary file; `take` reads it back and forgets it.
    Keys iterate in the order stored (a key stored again moves last), so a store can be a table's LRU order too.
    The file is rewritten with the live objects only once its dead bytes pass both `COMPACT_AFTER` and the live
    bytes, so it stays within about twice what is stored.

    What stays in memory per key is its place in the file as one int (offset and length packed): a 10 GB capture
    keeps tens of thousands of addresses here. With a tuple per key and the history's own LRU table beside the
    store, an address on disk cost 271 bytes; now 176, its string included (tracemalloc, 60,000 addresses)."""

    COMPACT_AFTER = 64 << 20

    def __init__(self) -> None:
        self._file = None
        self._where: OrderedDict[Any, int] = OrderedDict()  # key -> offset << _SHIFT | length, in the order stored
        self._keep: dict[Any, dict[int, Any]] = {}  # key -> objects kept in memory (`put`), for the few that have some
        self._end = 0
        self._live = 0
        self._unflushed = False  # written since the last flush
        self.puts = 0  # objects written so far (a counter for tests and measurements)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: object) -> bool:
        return key in self._where

    def __iter__(self) -> Iterator[Any]:
        """Keys, the one stored longest ago first."""
        return iter(self._where)

    def put(self, key: Any, obj: Any, keep: dict[int, Any] | None = None) -> None:
        """Store `obj` under `key`, last in the order (a key stored already is replaced). `keep` (id() -> object):
        objects `obj` refers to that stay in memory as they are, and are the very same objects in what `take`
        returns (another table still updates them)."""
        if key in self._where:
            self._forget(key, self._where.pop(key))
        if self._file is None:
            self._file = _spill_file()
        blob = _dumps(obj, keep)
        length = len(blob)
        if length > _LENGTH:
            raise ValueError(f"an object of {length:,} bytes is too large to spill")
        f = self._file
        f.seek(self._end)
        f.write(blob)
        self._unflushed = True
        self._where[key] = self._end << _SHIFT | length
        if keep:
            self._keep[key] = keep
        self._end += length
        self._live += length
        self.puts += 1

    def read(self, key: Any) -> Any:
        """A copy of the object stored under `key`, left in the store (KeyError when there is none); the
        objects kept in memory at `put` are the very same objects in it."""
        place = self._where[key]
        self._flush()
        blob = _pread(self._file, place >> _SHIFT, place & _LENGTH)
        keep = self._keep.get(key)
        if keep is None:
            return pickle.loads(blob)
        reader = pickle.Unpickler(io.BytesIO(blob))
        reader.persistent_load = keep.__getitem__  # type: ignore[method-assign]
        return reader.load()

    def _flush(self) -> None:
        """Written objects out of the file object's buffer before they are read by offset (`_pread`): once per
        read after writes, not once per write (the address history writes its cold addresses 256 at a time)."""
        if self._unflushed:
            self._file.flush()
            self._unflushed = False

    def take(self, key: Any) -> Any:
        """The object stored under `key`, removed from the store (KeyError when there is none)."""
        obj = self.read(key)
        self.drop(key)
        return obj

    def drop(self, key: Any) -> None:
        """Forget the object stored under `key` (KeyError when there is none)."""
        self._forget(key, self._where.pop(key))
        self._settle()

    def drop_oldest(self) -> Any:
        """Forget the object stored longest ago and return its key (KeyError when the store is empty)."""
        key, place = self._where.popitem(last=False)
        self._forget(key, place)
        self._settle()
        return key

    def _forget(self, key: Any, place: int) -> None:
        self._live -= place & _LENGTH
        self._keep.pop(key, None)

    def _settle(self) -> None:
        """After a removal: an empty store writes over its old objects; one mostly dead is compacted."""
        dead = self._end - self._live
        if not self._where:
            self._end = 0  # nothing stored: the next object is written over the old ones
        elif dead > self.COMPACT_AFTER and dead > self._live:
            self._compact()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file, self._where, self._keep = None, OrderedDict(), {}
        self._end, self._live, self._unflushed = 0, 0, False

    def __del__(self) -> None:
        if self._file is not None:
            self._file.close()

    def _compact(self) -> None:
        """The live objects' bytes copied to a new file, in the order stored (which stays the keys' order)."""
        self._flush()
        old, new = self._file, _spill_file()
        end = 0
        for key, place in list(self._where.items()):
            length = place & _LENGTH
            new.write(_pread(old, place >> _SHIFT, length))
            self._where[key] = end << _SHIFT | length
            end += length
        old.close()
        new.flush()
        self._file, self._end = new, end


_SHIFT = 32  # a stored object's place: its offset in the file above these bits, its length in them
_LENGTH = (1 << _SHIFT) - 1


def _dumps(obj: Any, keep: dict[int, Any] | None = None) -> bytes:
    buf = io.BytesIO()
    (_KeepPickler(buf, keep) if keep else _Pickler(buf, pickle.HIGHEST_PROTOCOL)).dump(obj)
    return buf.getvalue()


class _Pickler(pickle.Pickler):
    """pickle with dataclasses reduced to (class, constructor arguments): attrgetter collects the fields in C."""

    _getters: dict[type, Callable[[Any], tuple] | None] = {}

    def reducer_override(self, obj: Any):
        cls = type(obj)
        try:
            get = self._getters[cls]
        except KeyError:
            get = self._getters[cls] = _fields_getter(cls)
        return NotImplemented if get is None else (cls, get(obj))


class _KeepPickler(_Pickler):
    """Leaves the objects of `keep` out, by their id(), for `SpillStore.take` to put back (slower than
    `_Pickler`: pickle asks `persistent_id` of every object)."""

    def __init__(self, file, keep: dict[int, Any]) -> None:
        super().__init__(file, pickle.HIGHEST_PROTOCOL)
        self.keep = keep

    def persistent_id(self, obj: Any) -> int | None:
        key = id(obj)
        return key if key in self.keep else None


def _fields_getter(cls: type) -> Callable[[Any], tuple] | None:
    if not is_dataclass(cls):
        return None
    names = [f.name for f in fields(cls)]
    if not names or not all(f.init for f in fields(cls)):
        return None
    get = attrgetter(*names)
    return (lambda obj: (get(obj),)) if len(names) == 1 else get


__all__ = ["CHUNK", "NEVER", "THRESHOLD", "Chain", "Merged", "SpillList", "SpillStore", "pickled_chunks"]
