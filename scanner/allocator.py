"""How a process that parses pages asks the C allocator to keep the memory it frees.

Parsing a page builds its DOM in memory that is freed when the next page comes; glibc's malloc
gives such memory back to the kernel as soon as the free top of its heap passes 128 kB, so the
next page takes it again, one page fault per 4 kB: about 25 faults per 40 kB page, a third of
the parse's time (measured: 300–330 µs a parse with them, 200–250 µs without, on the scan
benchmark's pages). Keeping up to :data:`KEPT` bytes of freed memory in the process removes
them. The peak memory stays what the scan needs: only memory already used is kept.
"""

from __future__ import annotations

import ctypes
import functools

# glibc's mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
KEPT = 64 * 1024 * 1024  # freed bytes at the heap's top kept instead of given back
# allocations above this size get memory of their own from the kernel (and give it back when
# freed); below it they come from the heap. Setting the trim threshold fixes glibc's otherwise
# self-adjusting mmap threshold at its default of 128 kB: a large page's buffers would then be
# taken from the kernel and faulted in on every page.
OWN_MAPPING_ABOVE = 4 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Tune this process' allocator (once); False where it is not glibc's (musl's, macOS's,
    Windows'), whose own policy then stands."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, KEPT) and mallopt(_M_MMAP_THRESHOLD, OWN_MAPPING_ABOVE))
