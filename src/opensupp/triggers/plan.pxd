# C types for plan.py when Cython compiles it (an "augmenting" .pxd: plan.py stays plain Python).
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.string cimport memcpy


cdef int _breathe() except -1
cdef int _FIELD_KIND, _TIME_KIND, _WAIT_KIND


cdef class Writer:
    cdef PyObject* data
    cdef char* buffer
    cdef Py_ssize_t size, capacity
    cdef list pieces

    cdef int reserve(self, Py_ssize_t n) except -1
    @cython.locals(n=Py_ssize_t, data="const char*")
    cdef inline int add(self, bytes piece) except -1
    cdef inline int byte(self, bytes piece) except -1
    @cython.locals(digits="char[24]", k=int)
    cdef inline int number(self, unsigned long long n) except -1
    cdef inline int move(self, Writer other) except -1
    cdef object value(self)


cdef class Check:
    cdef readonly Py_ssize_t index
    cdef readonly int kind
    cdef readonly object key, test
    cdef readonly bint fold
    cdef readonly bytes head, why


cdef class Entry:
    cdef readonly object id
    cdef readonly str event
    cdef readonly bint active, only_once, chained
    cdef readonly tuple checks
    cdef readonly bytes now, later, never, inactive, once, none
    cdef readonly object problem
    cdef readonly dict events

    cpdef bytes never_because(self, str why)
    cpdef bytes event_gate(self, str event)


cdef class Situation:
    cdef long long site, page
    cdef object calendar
    cdef list closed, opened, holds, shown_as_text
    cdef dict encoded


cdef class Walk:
    cdef long long t, soonest, failed_at, failed_number, number, wait
    cdef Check failed
    cdef bytes failed_shown

    # the steps of Plan.run for one trigger: direct C calls (inline: the C compiler may fold them in)
    @cython.locals(chained=bint, last=Py_ssize_t, j=Py_ssize_t, kind=int, wait="long long", ok=bint, check=Check)
    cdef inline int conditions(self, Entry e, Situation situation, Writer reasons) except -1
    @cython.locals(i=Py_ssize_t)
    cdef inline int field_reason(self, Check check, Situation situation, Writer reasons) except -1
    @cython.locals(t="long long", actual="long long", threshold="long long", wait="long long")
    cdef inline int wait_reason(self, Check check, Situation situation, Writer reasons) except -1
    @cython.locals(t="long long", number="long long", ok=bint)
    cdef inline int filter_reason(self, Check check, Situation situation, Writer reasons) except -1
    @cython.locals(i=Py_ssize_t, shown=bytes)
    cdef inline int fail(self, Check check, Situation situation) except -1
    @cython.locals(after="long long")
    cdef inline int write_head(self, Entry e, str event, frozenset fired, Writer out) except -1
    cdef inline int write_failure(self, Entry e, Writer out) except -1


cdef class Plan:
    cdef readonly list checks, fields, entries
    cdef Py_ssize_t size_hint

    @cython.locals(k=Py_ssize_t, last_entry=Py_ssize_t, event=str, fired=frozenset, e=Entry, out=Writer,
                   reasons=Writer, situation=Situation, walk=Walk)
    cpdef bytes run(self, ctx, bytes prefix=*, bytes suffix=*, bint breathe=*)
    @cython.locals(i=Py_ssize_t, check=Check, checks=list, folded=dict, encoded=dict, ok=bint, shown=bytes,
                   body=bytes)
    cdef int check_fields(self, dict values, Situation situation, bint breathe) except -1
