"""setup.py — only here because setuptools takes cffi_modules from setup() (metadata: pyproject.toml)."""
from setuptools import setup

# force: relink every time, so the rpath follows WBCACHE_BUILD_DIR even when the generated
# C source did not change (setuptools would keep the old extension as "up-to-date").
setup(cffi_modules=["build_ffi.py:ffibuilder"], options={"build_ext": {"force": True}})
