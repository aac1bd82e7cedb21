"""Type stub of the CFFI extension built by build_ffi.py (wb_* functions and constants)."""
from typing import Any

ffi: Any
lib: Any
