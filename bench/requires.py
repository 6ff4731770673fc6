# SPDX-License-Identifier: MIT
"""The benchmarks' check of their imports: one clear error, before any run starts, that names the
interpreter, what it lacks and the command that finds one that has it (scripts/python)."""
import importlib
import os
import sys

# What scripts/python looks for when not told otherwise.
DEFAULT_NEEDS = ("torch", "numpy", "h5py")


def require(*modules):
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            missing.append(f"{name} ({e})")
    if not missing:
        return
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    script = os.path.relpath(os.path.abspath(sys.argv[0]), root)
    needs = "" if set(modules) <= set(DEFAULT_NEEDS) else f" --needs {','.join(modules)}"
    raise SystemExit(
        f"{script}: {sys.executable} cannot import {'; '.join(missing)}.\n"
        f"Run it as `scripts/python{needs} {script} ...` from the repository root: it finds an "
        f"interpreter that has them (set DPT_PYTHON to choose one); Debian: scripts/install-deps.sh.")
