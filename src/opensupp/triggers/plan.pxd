# C types for plan.py when Cython compiles it (an "augmenting" .pxd: plan.py stays plain Python).
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.string cimport memcpy


cdef int _breathe() except -1


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


cdef class Plan:
    cdef readonly list checks, fields, entries
    cdef Py_ssize_t size_hint

    @cython.locals(n=Py_ssize_t, i=Py_ssize_t, j=Py_ssize_t, k=Py_ssize_t, last=Py_ssize_t, breathe=bint,
                   last_entry=Py_ssize_t, kind=int, field=int, wait_kind=int, time_kind=int, ok=bint, chained=bint,
                   event=str, fired=frozenset, check=Check, failed=Check, e=Entry, out=Writer, reasons=Writer,
                   closed=list, opened=list, holds=list, shown_as_text=list, checks=list, failed_shown=bytes,
                   site="long long", page="long long",
                   t="long long", actual="long long", wait="long long", soonest="long long", threshold="long long",
                   failed_at="long long", after="long long", number="long long", failed_number="long long")
    cpdef bytes run(self, ctx, bytes prefix=*, bytes suffix=*, bint breathe=*)
