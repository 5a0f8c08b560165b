"""The trigger engine's hot path: compiled triggers as one plan, walked for a situation
straight into the JSON of the decisions.

``engine`` says what a decision is (read its module doc: the gates, the waits, the reasons);
this module computes exactly that, for many triggers at once, and writes each decision as
JSON bytes rather than as dicts: an account's 50 triggers of 4 conditions make 200 reasons,
and building then encoding 200 dicts cost more than the rest of the request together.

- ``Plan(triggers)`` runs once per set of compiled triggers (the caller caches it): every
  distinct condition becomes one ``Check`` with its reason's head (``{"name", "cmp",
  "expected", "actual":``) and its sentence for ``why`` already encoded; every trigger an
  ``Entry`` with its own head and its gate sentences encoded.
- ``Plan.run(ctx)`` resolves the ``Situation`` (clocks, calendar) and checks each distinct
  visitor-field condition once in it (``Plan.check_fields``), then a ``Walk`` takes every
  trigger in turn: its conditions' reasons (``Walk.conditions``: a step per kind of
  condition), then its head (``Walk.write_head``: the gates, then what the conditions gave),
  its pieces of bytes written to one ``Writer``. Compiled, the steps are direct C calls on
  typed objects (``cdef inline`` in plan.pxd), so the split costs no Python call.

This file is plain Python and runs as such. Where the package was built with a C compiler,
Cython compiled it (``setup.py``; ``plan.pxd`` gives the C types), and the compiled module is
what Python imports; ``COMPILED`` says which one runs. Both are tested against the same
expectations. One class has a body for each: ``Writer``, where the bytes go (compiled, a
bytes object written in place, a memcpy per piece; as Python, a list of pieces joined once), in branches on
``cython.compiled``, which the compiled module knows to be true and plain Python (Cython's
pure-Python shadow module) false. Its C functions come from plan.pxd's cimports.
"""

from __future__ import annotations

import sys
from typing import Any

import cython
import orjson

#: The kinds of ``engine.Condition``: a visitor field, a part of the local time, a wait on a
#: clock (``delay_*`` with ``eq``/``gte``/``gt``) and a filter on a clock (the other comparators).
FIELD, TIME, WAIT, CLOCK = 0, 1, 2, 3
_FIELD_KIND, _TIME_KIND, _WAIT_KIND = FIELD, TIME, WAIT  # the same, as C ints where compiled (plan.pxd)

COMPILED = not __file__.endswith(".py")

#: The largest clock (seconds on the site or the page) and wait ``run`` takes: 10**18 - 1
#: (the catalogue's and the API's bound), so that a clock plus a wait fits 64 bits.
MAX_CLOCK = 10**18 - 1

_TRUE, _FALSE, _NULL = b',"ok":true', b',"ok":false', b"null"
_SMALL = 1024  # numbers below this have their bytes ready (Writer.number, as Python)
_NUMBERS = tuple(b"%d" % n for n in range(_SMALL))
_AT, _WAIT_OK, _WAIT_AFTER = b',"at":', b',"ok":true,"wait":', b',"wait":'
_IN, _SECONDS, _ACTUAL, _CLOSE = b" in ", b" s", b" (actual: ", b')"'
_LATER_END = b',"why":null,"reasons":['
_NEVER_END = b',"reasons":['


#: triggers or checks between two chances for another thread to take the GIL (``_breathe``)
BREATHE_EVERY = 32


def _breathe():
    """Release the GIL for a moment. Compiled code never offers it by itself (only Python
    code checks whether another thread asked for it), so a long plan built or run in a
    worker thread would hold the event loop's thread off for its whole length; releasing it
    hands it over when the loop's thread has been waiting (CPython's switch interval, 5 ms),
    and costs a few dozen nanoseconds when not. As Python, the interpreter does this itself."""
    if cython.compiled:
        with cython.nogil:
            pass
    return 0


class Writer:
    """Bytes written piece by piece, then taken as one ``bytes`` (``value``). Compiled, the
    pieces are written straight into a new bytes object, grown as needed and cut to size at
    the end (the C API's way of building one), so the answer is never copied whole."""

    def __init__(self, capacity: int = 4096) -> None:
        if cython.compiled:
            data = PyBytes_FromStringAndSize(cython.NULL, capacity)  # noqa: F821 (plan.pxd cimports it)
            Py_INCREF(data)  # noqa: F821 (plan.pxd): the one reference, ``self.data``'s
            self.data = cython.cast(cython.pointer(PyObject), data)  # noqa: F821 (plan.pxd)
            self.buffer = PyBytes_AS_STRING(data)  # noqa: F821 (plan.pxd cimports it)
            self.size = 0
            self.capacity = capacity
        else:
            self.pieces = []

    def __dealloc__(self) -> None:  # compiled only: a C type's destructor
        Py_XDECREF(self.data)  # noqa: F821 (plan.pxd cimports it)

    def reserve(self, n):  # room for n more bytes
        if cython.compiled:
            capacity = 2 * (self.size + n)
            _PyBytes_Resize(cython.address(self.data), capacity)  # noqa: F821 (plan.pxd): MemoryError, or grown
            self.buffer = PyBytes_AS_STRING(cython.cast(object, self.data))  # noqa: F821 (plan.pxd)
            self.capacity = capacity
        return 0

    def add(self, piece):
        if cython.compiled:
            n = len(piece)
            if self.size + n > self.capacity:
                self.reserve(n)
            data = piece
            memcpy(self.buffer + self.size, data, n)  # noqa: F821 (plan.pxd cimports it)
            self.size += n
        else:
            self.pieces.append(piece)
        return 0

    def byte(self, piece):  # a piece of one byte
        if cython.compiled:
            if self.size == self.capacity:
                self.reserve(1)
            self.buffer[self.size] = piece[0]
            self.size += 1
        else:
            self.pieces.append(piece)
        return 0

    def number(self, n):  # n >= 0, in decimal
        if cython.compiled:
            if self.size + 20 > self.capacity:  # (20: the digits of the largest 64-bit number)
                self.reserve(20)
            if n < 10:
                self.buffer[self.size] = 48 + n
                self.size += 1
            elif n < 100:
                self.buffer[self.size] = 48 + n // 10
                self.buffer[self.size + 1] = 48 + n % 10
                self.size += 2
            else:
                k = 24
                while True:
                    k -= 1
                    digits[k] = 48 + n % 10  # noqa: F821 (a C array: plan.pxd declares it)
                    n //= 10
                    if n == 0:
                        break
                memcpy(self.buffer + self.size, cython.address(digits[k]), 24 - k)  # noqa: F821 (plan.pxd)
                self.size += 24 - k
        else:
            self.pieces.append(_NUMBERS[n] if n < _SMALL else str(n).encode())
        return 0

    def move(self, other):  # append what ``other`` holds, and empty it
        if cython.compiled:
            if self.size + other.size > self.capacity:
                self.reserve(other.size)
            memcpy(self.buffer + self.size, other.buffer, other.size)  # noqa: F821 (plan.pxd cimports it)
            self.size += other.size
            other.size = 0
        else:
            self.pieces.extend(other.pieces)
            other.pieces.clear()
        return 0

    def value(self):  # once, at the end
        if cython.compiled:
            _PyBytes_Resize(cython.address(self.data), self.size)  # noqa: F821 (plan.pxd cimports it)
            result = cython.cast(object, self.data)  # a new reference: the caller's
            Py_XDECREF(self.data)  # noqa: F821 (plan.pxd): and the writer lets go of its own
            self.data = cython.NULL
            self.buffer = cython.NULL
            self.size = self.capacity = 0
            return result
        else:
            return b"".join(self.pieces)


class Check:
    """One distinct condition: what to check, and its reason's and sentence's bytes."""

    def __init__(self, condition: tuple, index: int) -> None:
        kind, key, test, head, fold, why = condition
        self.index = index  # in ``Plan.checks``, and in a run's lists of what each check gave
        self.kind = kind
        self.key = key  # the visitor field, the part of the local time (0-2) or the clock (0 site, 1 page)
        self.test = test  # actual -> bool; a wait's threshold
        self.fold = fold  # test the casefolded string
        self.head = orjson.dumps(head)[:-1] + b',"actual":'
        self.why = orjson.dumps(why)[:-1]  # the JSON string, open: a suffix and '"' close it


class Entry:
    """One trigger: its checks (of ``Plan.checks``) and its encoded heads."""

    def __init__(self, trigger: Any, checks: tuple[Check, ...], events: tuple[str, ...]) -> None:
        self.id = trigger.id
        self.active = trigger.active
        self.event = sys.intern(trigger.event)  # (run compares it with the situation's, interned: by identity)
        self.only_once = trigger.only_once
        self.chained = not trigger.any
        self.checks = checks
        start = b'{"id":' + orjson.dumps(trigger.id) + b',"name":' + orjson.dumps(trigger.name) + b',"fires":'
        self.now = start + b'"now","after":0' + _LATER_END
        self.later = start + b'"later","after":'  # + seconds + _LATER_END
        self.never = start + b'"never","after":null,"why":'  # + the JSON string + _NEVER_END
        self.problem = None
        if trigger.problem is not None:
            self.problem = self.never + orjson.dumps(trigger.problem) + b',"reasons":[]}'
        # the heads of "never" with each gate's sentence (and ``none``, under ``any``)
        self.inactive = self.never_because("inactive: the trigger's active is false")
        self.once = self.never_because(
            f"only_once: trigger {trigger.id} has already fired for this visitor (fired_triggers)")
        self.none = self.never_because(f"conditions: none of the {len(checks)} holds (constraints: any)")
        self.events = {e: self.event_gate(e) for e in events if e != trigger.event}

    def never_because(self, why: str) -> bytes:
        return self.never + orjson.dumps(why) + _NEVER_END

    def event_gate(self, event: str) -> bytes:
        return self.never_because(f"event: the trigger runs {self.event}, not {event}")


class Plan:
    """Compiled triggers (``engine.CompiledTrigger``, in the order to answer them), ready to run."""

    def __init__(self, triggers: Any, events: tuple[str, ...] = (), breathe: bool = False) -> None:
        """``breathe``: built off the event loop, in a thread that must let the loop's thread
        run now and then (see ``_breathe``)."""
        self.checks: list[Check] = []
        self.fields: list[int] = []  # the indices of the visitor-field checks
        self.entries: list[Entry] = []
        self.size_hint = 4096  # bytes of the last answer, and some
        index: dict[int, int] = {}  # id of an interned condition -> its check
        triggers = list(triggers)  # holds the conditions (the keys of ``index``) while it is built
        for n, trigger in enumerate(triggers):
            if breathe and n % BREATHE_EVERY == 0:
                _breathe()
            checks = []
            for condition in trigger.conditions:
                i = index.get(id(condition))
                if i is None:
                    i = index[id(condition)] = len(self.checks)
                    self.checks.append(Check(condition, i))
                    if condition[0] == FIELD:
                        self.fields.append(i)
                checks.append(self.checks[i])
            self.entries.append(Entry(trigger, tuple(checks), events))

    @cython.boundscheck(False)  # (compiled: the indices are the checks' own, 0 <= check.index < len(checks))
    @cython.wraparound(False)
    def run(self, ctx, prefix=b"", suffix=b"", breathe=False):  # -> bytes (plan.pxd types it)
        """The decisions, in order, as a JSON array: see ``engine.Decision``; between ``prefix``
        and ``suffix`` when given (the rest of an answer: no copy of the array into it). The
        clocks (``ctx.site``, ``ctx.page``) must be in 0..MAX_CLOCK, as ``engine.context`` checks.
        ``breathe``: run off the event loop, letting the loop's thread take turns (``_breathe``)."""
        situation = Situation(ctx, len(self.checks))
        self.check_fields(ctx.values, situation, breathe)
        event = sys.intern(ctx.event)
        fired = ctx.fired
        walk = Walk()
        out = Writer(self.size_hint)
        reasons = Writer(4096)  # one trigger's, written after its head
        out.add(prefix)
        out.byte(b"[")
        last_entry = len(self.entries) - 1
        for k, e in enumerate(self.entries):
            if breathe and k % BREATHE_EVERY == 0:
                _breathe()
            if e.problem is not None:
                out.add(e.problem)
            else:
                walk.conditions(e, situation, reasons)
                walk.write_head(e, event, fired, out)
                out.move(reasons)
                out.byte(b"]")
                out.byte(b"}")
            if k != last_entry:
                out.byte(b",")
        out.byte(b"]")
        out.add(suffix)
        answer = out.value()
        self.size_hint = len(answer) + 256  # the next run's buffer: no growing on the way
        return answer

    @cython.boundscheck(False)
    @cython.wraparound(False)
    def check_fields(self, values, situation, breathe):
        """Each distinct visitor-field condition once, into ``situation``: whether it holds,
        and its reason, closed (checked now) or open for the "at" of a check after a wait."""
        checks = self.checks
        folded = {}  # the strings compared casefolded, by field
        encoded = situation.encoded
        for i in self.fields:
            if breathe and i % BREATHE_EVERY == 0:
                _breathe()
            check = checks[i]
            key = check.key
            value = values[key]
            if check.fold:
                text = folded.get(key)
                if text is None:
                    text = folded[key] = value.casefold()
                ok = bool(check.test(text))
            else:
                ok = bool(check.test(value))
            shown = encoded.get(key)
            if shown is None:
                shown = encoded[key] = orjson.dumps(value)
            body = check.head + shown + (_TRUE if ok else _FALSE)
            situation.closed[i] = body + b"}"
            situation.opened[i] = body + _AT
            situation.holds[i] = ok
        return 0


class Situation:
    """One run's situation, resolved for the walks: the clocks, the calendar, and what each
    distinct visitor-field condition gave (``Plan.check_fields``), by check index."""

    def __init__(self, ctx: Any, n: int) -> None:
        self.site = ctx.site
        self.page = ctx.page
        self.calendar = ctx.calendar
        self.closed = [None] * n  # the reason checked now, closed
        self.opened = [None] * n  # the reason open for its "at"
        self.holds = [False] * n
        self.shown_as_text = [None] * n  # the value's JSON as the text of a JSON string, for ``why``
        self.encoded = {}  # each field's value as JSON, by field


class Walk:
    """Walks one trigger's conditions, writing their reasons, then writes its decision's head;
    one per run, used for each trigger in turn. Holds what the conditions gave."""

    def __init__(self) -> None:
        self.t = 0  # seconds from now at which the current condition is checked; at the end, the total wait
        self.soonest = -1  # ``any``: the earliest wait of a condition that holds (-1: none holds)
        self.failed = None  # ``all``: the first condition that does not hold,
        self.failed_at = 0  # when it is checked,
        self.failed_shown = None  # and its actual value: a visitor field's, as text for a JSON string,
        self.failed_number = -1  # or a number (-1: null, a time beyond the calendar)
        self.number = -1  # the number the last clock or time condition read (-1: none)
        self.wait = 0  # the seconds the last wait waits

    def conditions(self, e, situation, reasons):
        """The trigger's conditions in order: their reasons to ``reasons``, what they give to
        ``self``. Waits add up under ``all`` (``chained``); under ``any`` each counts from now."""
        chained = e.chained
        self.t = 0
        self.soonest = -1
        self.failed = None
        self.failed_at = 0
        self.failed_shown = None
        self.failed_number = -1
        last = len(e.checks) - 1
        for j, check in enumerate(e.checks):
            kind = check.kind
            wait = -1
            if kind == _FIELD_KIND:
                ok = self.field_reason(check, situation, reasons)
            elif kind == _WAIT_KIND:
                ok = self.wait_reason(check, situation, reasons)
                wait = self.wait
            else:
                ok = self.filter_reason(check, situation, reasons)
            if j != last:
                reasons.byte(b",")
            if wait > 0 and chained:
                self.t += wait
            if not ok:
                if self.failed is None:
                    self.fail(check, situation)
            elif wait <= 0:
                self.soonest = 0
            elif self.soonest < 0 or wait < self.soonest:
                self.soonest = wait
        return 0

    @cython.boundscheck(False)  # (compiled: the index is the check's own, 0 <= check.index < len(checks))
    @cython.wraparound(False)
    def field_reason(self, check, situation, reasons):
        """A visitor-field condition, checked already (``Plan.check_fields``): its reason; whether it holds."""
        i = check.index
        if self.t:
            reasons.add(situation.opened[i])
            reasons.number(self.t)
            reasons.byte(b"}")
        else:
            reasons.add(situation.closed[i])
        return situation.holds[i]

    def wait_reason(self, check, situation, reasons):
        """A wait's reason; it always holds. Leaves the seconds it waits in ``self.wait`` (0: its
        clock is there already)."""
        t = self.t
        actual = (situation.page if check.key else situation.site) + t
        threshold = check.test
        wait = threshold - actual if threshold > actual else 0
        reasons.add(check.head)
        reasons.number(actual)
        if t:
            reasons.add(_TRUE)
            reasons.add(_AT)
            reasons.number(t)
            reasons.add(_WAIT_AFTER)
        else:
            reasons.add(_WAIT_OK)
        reasons.number(wait)
        reasons.byte(b"}")
        self.wait = wait
        return True

    def filter_reason(self, check, situation, reasons):
        """A condition on the local time or on a clock: its reason; whether it holds. Leaves the
        number it read in ``self.number`` (-1: a time beyond the calendar)."""
        t = self.t
        number = -1
        if check.kind == _TIME_KIND:
            local = situation.calendar.at(t)
            part = None if local is None else local[check.key]
            ok = part is not None and bool(check.test(part))
            if part is not None:
                number = part
        else:
            number = (situation.page if check.key else situation.site) + t
            ok = bool(check.test(number))
        self.number = number
        reasons.add(check.head)
        if number < 0:
            reasons.add(_NULL)
        else:
            reasons.number(number)
        reasons.add(_TRUE if ok else _FALSE)
        if t:
            reasons.add(_AT)
            reasons.number(t)
        reasons.byte(b"}")
        return ok

    def fail(self, check, situation):
        """Keep the first condition that does not hold, when, and its actual value, for ``why``."""
        self.failed = check
        self.failed_at = self.t
        if check.kind == _FIELD_KIND:
            i = check.index
            shown = situation.shown_as_text[i]
            if shown is None:
                shown = situation.shown_as_text[i] = orjson.dumps(situation.encoded[check.key].decode())[1:-1]
            self.failed_shown = shown
        else:
            self.failed_number = self.number
        return 0

    def write_head(self, e, event, fired, out):
        """The decision's head: the gates first, then what the conditions gave."""
        if not e.active:
            out.add(e.inactive)
        elif e.event != event:
            head = e.events.get(event)
            out.add(head if head is not None else e.event_gate(event))
        elif e.only_once and fired and e.id in fired:
            out.add(e.once)
        elif self.failed is not None and e.chained:
            self.write_failure(e, out)
        else:
            if e.chained:
                after = self.t
            elif self.soonest >= 0 or len(e.checks) > 0:
                after = self.soonest  # -1: none holds
            else:
                after = 0  # no conditions: everyone, now
            if after > 0:
                out.add(e.later)
                out.number(after)
                out.add(_LATER_END)
            elif after == 0:
                out.add(e.now)
            else:
                out.add(e.none)
        return 0

    def write_failure(self, e, out):
        """The head of ``never`` under ``all``: which condition does not hold, when, and its actual value."""
        out.add(e.never)
        out.add(self.failed.why)
        if self.failed_at:
            out.add(_IN)
            out.number(self.failed_at)
            out.add(_SECONDS)
        out.add(_ACTUAL)
        if self.failed_shown is not None:
            out.add(self.failed_shown)
        elif self.failed_number < 0:
            out.add(_NULL)
        else:
            out.number(self.failed_number)
        out.add(_CLOSE)
        out.add(_NEVER_END)
        return 0
