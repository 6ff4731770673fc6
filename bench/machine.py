# SPDX-License-Identifier: MIT
"""The CPU a figure was measured on, for every table's caption: machines of one kind differ by
ISA (AVX2 only, or AVX-512), and figures of different CPUs do not compare."""
import platform


def cpu_description():
    model, flags = platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == platform.machine():
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    if "avx512f" in flags:
        extras = [name for flag, name in (("avx512_bf16", "BF16"), ("avx512_fp16", "FP16"),
                                          ("amx_tile", "AMX")) if flag in flags]
        isa = "AVX-512" + (f" ({', '.join(extras)})" if extras else "")
    elif "avx2" in flags:
        isa = "AVX2, no AVX-512"
    else:
        isa = "no AVX2"
    return f"CPU: {model}, {isa}"


# OpenBLAS kernel sets tuned for a vector ISA; anything else (Prescott, Nehalem, ...) is the generic
# fallback OpenBLAS takes for a CPU model it does not know.
_OPENBLAS_TUNED_CORES = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"}


def openblas_core():
    """The kernel set the system OpenBLAS picks on this CPU (what PyTorch from Debian calls)."""
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("openblas")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None


def reference_blas_env():
    """Environment that gives the PyTorch reference OpenBLAS's best kernels on this CPU, and a note
    for the caption. OpenBLAS 0.3.21 runs its SSE3 "Prescott" kernels on CPU models newer than it
    (measured on a Xeon of model 207: 15-28 GFLOP/s instead of 80-140), which would flatter
    dptrain (oneDNN reads the ISA, not the model); OPENBLAS_CORETYPE names the kernel set."""
    core = openblas_core()
    if core is None or core.lower() in _OPENBLAS_TUNED_CORES:
        return {}, f"OpenBLAS core {core}" if core else "OpenBLAS core unknown"
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    break
    except OSError:
        pass
    chosen = "SkylakeX" if "avx512f" in flags else "Haswell" if "avx2" in flags else None
    if chosen is None:
        return {}, f"OpenBLAS core {core}"
    return ({"OPENBLAS_CORETYPE": chosen},
            f"OpenBLAS detects {core}; PyTorch runs with OPENBLAS_CORETYPE={chosen}")


def isa_cap_env(cap):
    """(environment for dptrain, environment for PyTorch, caption note) that make both run only
    code of ISA `cap` ("avx2") on a wider CPU: the closest this machine comes to an AVX2-only one
    (the vector units and caches stay this CPU's). None: no cap."""
    if cap is None:
        return {}, {}, ""
    if cap != "avx2":
        raise SystemExit(f"--cap-isa: only avx2 is supported, got {cap}")
    # Debian's PyTorch calls the same system oneDNN (convolutions) and OpenBLAS (GEMMs) as dptrain.
    libs = {"OPENBLAS_CORETYPE": "Haswell", "ONEDNN_MAX_CPU_ISA": "AVX2"}
    return (libs, dict(libs, ATEN_CPU_CAPABILITY="avx2"),
            "ISA capped to AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell, "
            "ATEN_CPU_CAPABILITY=avx2) on ")
