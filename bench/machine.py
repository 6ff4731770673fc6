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
