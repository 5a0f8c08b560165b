# C types for plan.py when Cython compiles it (an "augmenting" .pxd: plan.py stays plain Python).
cimport cython


cdef class Check:
    cdef readonly int kind
    cdef readonly object key, test
    cdef readonly bint fold
    cdef readonly bytes head, why


cdef class Entry:
    cdef readonly object id, event
    cdef readonly bint active, only_once, chained
    cdef readonly list checks
    cdef readonly bytes now, later, never, inactive, once, none
    cdef readonly object problem
    cdef readonly dict events

    cpdef bytes never_because(self, str why)
    cpdef bytes event_gate(self, str event)


cdef class Plan:
    cdef readonly list checks, fields, entries

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, k=Py_ssize_t, last=Py_ssize_t,
                   last_entry=Py_ssize_t, kind=int, ok=bint, chained=bint, check=Check, failed=Check, e=Entry,
                   out=list, reasons=list, bodies=list, holds=list, shown_as_text=list, checks=list, shown=bytes,
                   failed_shown=bytes, site="long long", page="long long", t="long long", actual="long long",
                   wait="long long", soonest="long long", threshold="long long", failed_at="long long",
                   after="long long")
    cpdef bytes run(self, ctx)


cdef bytes _number(long long n)
