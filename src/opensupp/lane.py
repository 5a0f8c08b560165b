"""The lane: one worker thread per process for CPU work too long for the event loop.

Validating many regular expressions (RE2 may take long to compile one), or building and
running a large trigger plan, would hold every other request up if done on the loop. Such
work runs here instead, one job at a time per process (more threads would only share the
same GIL), while the loop keeps serving: Python code in the job hands the GIL back within
CPython's switch interval (5 ms), and the trigger engine's compiled loops release it
regularly (``triggers.plan._breathe``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opensupp-lane")


async def run(fn: Callable[..., T], /, *args: Any) -> T:
    """``fn(*args)`` in the lane's thread, once the jobs before it are done."""
    return await asyncio.get_running_loop().run_in_executor(_EXECUTOR, fn, *args)
