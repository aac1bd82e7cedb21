"""setup.py — only here because setuptools takes cffi_modules from setup() (metadata: pyproject.toml)."""
from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
