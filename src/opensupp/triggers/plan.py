"""The trigger engine's hot path: compiled triggers as one plan, walked for a situation
straight into the JSON of the decisions.

``rules`` says what a decision is (read its module doc: the gates, the waits, the reasons);
this module computes exactly that, for many triggers at once, and writes each decision as
JSON bytes rather than as dicts: an account's 50 triggers of 4 conditions make 200 reasons,
and building then encoding 200 dicts cost more than the rest of the request together.

- ``Plan(triggers)`` runs once per set of compiled triggers (the caller caches it): every
  distinct condition becomes one ``Check`` with its reason's head (``{"name", "cmp",
  "expected", "actual":``) and its sentence for ``why`` already encoded; every trigger an
  ``Entry`` with its own head and its gate sentences encoded.
- ``Plan.run(ctx)`` checks each distinct visitor-field condition once, then walks every
  trigger, appending byte strings to one list that is joined once.

This file is plain Python and runs as such. Where the package was built with a C compiler,
Cython compiled it (``setup.py``; ``plan.pxd`` gives the C types), and the compiled module is
what Python imports; ``COMPILED`` says which one runs. Both are tested against the same
expectations.
"""

from __future__ import annotations

from typing import Any

import orjson

#: The kinds of ``rules.Condition``: a visitor field, a part of the local time, a wait on a
#: clock (``delay_*`` with ``eq``/``gte``/``gt``) and a filter on a clock (the other comparators).
FIELD, TIME, WAIT, CLOCK = 0, 1, 2, 3

COMPILED = not __file__.endswith(".py")

#: The largest clock (seconds on the site or the page) and wait ``run`` takes: 10**18 - 1
#: (the catalogue's and the API's bound), so that a clock plus a wait fits 64 bits.
MAX_CLOCK = 10**18 - 1

_TRUE, _FALSE, _NULL = b',"ok":true', b',"ok":false', b"null"
_SMALL = 1024  # numbers below this have their bytes ready
_NUMBERS = tuple(b"%d" % n for n in range(_SMALL))
# a reason's end when it is checked now, with and without the comma before the next one
_END, _END_MORE = b"}", b"},"
_AT, _WAIT_OK, _WAIT_AFTER = b',"at":', b',"ok":true,"wait":', b',"wait":'
_IN, _SECONDS, _ACTUAL, _CLOSE = b" in ", b" s", b" (actual: ", b')"'
_LATER_END = b',"why":null,"reasons":['
_NEVER_END = b',"reasons":['


def _number(n):  # an int >= 0 (typed by plan.pxd)
    return _NUMBERS[n] if n < _SMALL else str(n).encode()


class Check:
    """One distinct condition: what to check, and its reason's and sentence's bytes."""

    def __init__(self, condition: tuple) -> None:
        kind, key, test, head, fold, why = condition
        self.kind = kind
        self.key = key  # the visitor field, the part of the local time (0-2) or the clock (0 site, 1 page)
        self.test = test  # actual -> bool; a wait's threshold
        self.fold = fold  # test the casefolded string
        self.head = orjson.dumps(head)[:-1] + b',"actual":'
        self.why = orjson.dumps(why)[:-1]  # the JSON string, open: a suffix and '"' close it


class Entry:
    """One trigger: its checks (indices into ``Plan.checks``) and its encoded heads."""

    def __init__(self, trigger: Any, checks: list[int], events: tuple[str, ...]) -> None:
        self.id = trigger.id
        self.active = trigger.active
        self.event = trigger.event
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
        self.once = self.never_because(f"only_once: trigger {trigger.id} has already fired for this visitor (fired_triggers)")
        self.none = self.never_because(f"conditions: none of the {len(checks)} holds (constraints: any)")
        self.events = {e: self.event_gate(e) for e in events if e != trigger.event}

    def never_because(self, why: str) -> bytes:
        return self.never + orjson.dumps(why) + _NEVER_END

    def event_gate(self, event: str) -> bytes:
        return self.never_because(f"event: the trigger runs {self.event}, not {event}")


class Plan:
    """Compiled triggers (``rules.CompiledTrigger``, in the order to answer them), ready to run."""

    def __init__(self, triggers: Any, events: tuple[str, ...] = ()) -> None:
        self.checks: list[Check] = []
        self.fields: list[int] = []  # the indices of the visitor-field checks
        self.entries: list[Entry] = []
        index: dict[int, int] = {}  # id of an interned condition -> its check
        triggers = list(triggers)  # holds the conditions (the keys of ``index``) while it is built
        for trigger in triggers:
            checks = []
            for condition in trigger.conditions:
                i = index.get(id(condition))
                if i is None:
                    i = index[id(condition)] = len(self.checks)
                    self.checks.append(Check(condition))
                    if condition[0] == FIELD:
                        self.fields.append(i)
                checks.append(i)
            self.entries.append(Entry(trigger, checks, events))

    def run(self, ctx):  # -> bytes (plan.pxd types it)
        """The decisions, in order, as a JSON array: see ``rules.Decision``. The clocks
        (``ctx.site``, ``ctx.page``) must be in 0..MAX_CLOCK, as ``rules.context`` checks."""
        values = ctx.values
        folded = ctx.folded
        event = ctx.event
        fired = ctx.fired
        calendar = ctx.calendar
        site = ctx.site
        page = ctx.page
        checks = self.checks
        # each visitor-field condition once: its reason up to "ok", and whether it holds
        n = len(checks)
        bodies = [None] * n
        holds = [False] * n
        shown_as_text = [None] * n  # the value's JSON as the text of a JSON string, for ``why``
        encoded = {}
        for i in self.fields:
            check = checks[i]
            key = check.key
            value = values[key]
            ok = bool(check.test(folded[key] if check.fold else value))
            shown = encoded.get(key)
            if shown is None:
                shown = encoded[key] = orjson.dumps(value)
            bodies[i] = check.head + shown + (_TRUE if ok else _FALSE)
            holds[i] = ok
        out = [b"["]
        reasons = []  # one trigger's, written after its head
        last_entry = len(self.entries) - 1
        for k, e in enumerate(self.entries):
            if e.problem is not None:
                out.append(e.problem)
            else:
                chained = e.chained
                t = 0  # seconds from now at which the current condition is checked
                soonest = -1  # ``any``: the earliest wait of a condition that holds
                failed = None  # ``all``: the first condition that does not hold,
                failed_at = 0  # when it is checked,
                failed_shown = None  # and its actual value, as text for a JSON string
                last = len(e.checks) - 1
                for j, i in enumerate(e.checks):
                    check = checks[i]
                    kind = check.kind
                    wait = -1
                    if kind == FIELD:
                        ok = holds[i]
                        reasons.append(bodies[i])
                    elif kind == WAIT:
                        ok = True
                        actual = (page if check.key else site) + t
                        threshold = check.test
                        wait = threshold - actual if threshold > actual else 0
                        reasons.append(check.head)
                        reasons.append(_number(actual))
                        if t:
                            reasons.append(_TRUE)
                            reasons.append(_AT)
                            reasons.append(_number(t))
                            reasons.append(_WAIT_AFTER)
                        else:
                            reasons.append(_WAIT_OK)
                        reasons.append(_number(wait))
                    else:
                        if kind == TIME:
                            local = calendar.at(t)
                            part = None if local is None else local[check.key]
                            ok = part is not None and bool(check.test(part))
                            shown = _NULL if part is None else _number(part)
                        else:
                            actual = (page if check.key else site) + t
                            ok = bool(check.test(actual))
                            shown = _number(actual)
                        reasons.append(check.head)
                        reasons.append(shown)
                        reasons.append(_TRUE if ok else _FALSE)
                    if t and kind != WAIT:
                        reasons.append(_AT)
                        reasons.append(_number(t))
                    reasons.append(_END_MORE if j != last else _END)
                    if wait > 0 and chained:
                        t += wait
                    if not ok:
                        if failed is None:
                            failed = check
                            failed_at = t
                            if kind == FIELD:
                                failed_shown = shown_as_text[i]
                                if failed_shown is None:
                                    failed_shown = shown_as_text[i] = orjson.dumps(encoded[check.key].decode())[1:-1]
                            else:
                                failed_shown = shown
                    elif wait <= 0:
                        soonest = 0
                    elif soonest < 0 or wait < soonest:
                        soonest = wait
                # the head: the gates first, then what the conditions gave
                if not e.active:
                    out.append(e.inactive)
                elif e.event != event:
                    head = e.events.get(event)
                    out.append(head if head is not None else e.event_gate(event))
                elif e.only_once and e.id in fired:
                    out.append(e.once)
                elif failed is not None and chained:
                    out.append(e.never)
                    out.append(failed.why)
                    if failed_at:
                        out.append(_IN)
                        out.append(_number(failed_at))
                        out.append(_SECONDS)
                    out.append(_ACTUAL)
                    out.append(failed_shown)
                    out.append(_CLOSE)
                    out.append(_NEVER_END)
                else:
                    if chained:
                        after = t
                    elif soonest >= 0 or last >= 0:
                        after = soonest  # -1: none holds
                    else:
                        after = 0  # no conditions: everyone, now
                    if after > 0:
                        out.append(e.later)
                        out.append(_number(after))
                        out.append(_LATER_END)
                    elif after == 0:
                        out.append(e.now)
                    else:
                        out.append(e.none)
                out.extend(reasons)
                reasons.clear()
                out.append(b"]}")
            if k != last_entry:
                out.append(b",")
        out.append(b"]")
        return b"".join(out)
