# SPDX-License-Identifier: MIT
# Sourced (not run) by the GPU kit's programs (bin/*, scripts/gpu-kit-tests.sh,
# scripts/gpu-first-run.sh): sets DPT_KIT (the unpacked kit's root) and DPT_KIT_LD_PATH, the
# library path its binaries run with: the kit's own lib/ first (oneDNN, OpenBLAS, HDF5 and what
# they need, so the host's copies of those are never used), then the CUDA libraries of this
# machine, then the driver's. It exports DPT_KIT_LD_PATH but never LD_LIBRARY_PATH: only the kit's
# binaries get it, so a Python with its own CUDA wheels (PyTorch) runs unchanged.
#
# Where the CUDA libraries (libcudart, libcublasLt, libcudnn, libnccl) come from, first hit first:
#   DPT_KIT_CUDA_LIBS (colon-separated, if set), the lib folders of the `nvidia` Python wheels of
#   every python3 tried (DPT_KIT_PYTHON, python3 on PATH, /opt/torch/.venv/bin/python3), then the
#   CUDA toolkit (CUDA_HOME, /usr/local/cuda: lib64, lib, targets/x86_64-linux/lib).
# The driver's libcuda.so.1 comes from the loader's cache or /usr/local/nvidia/lib64.
# Computed once: a caller that already has DPT_KIT_LD_PATH (exported by an outer script) keeps it.

DPT_KIT=${DPT_KIT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export DPT_KIT

# The lib folders of the nvidia-* wheels (nvidia/cudnn/lib, nvidia/nccl/lib, nvidia/cu13/lib, ...)
# that python3 $1 can import; nothing when it cannot.
dpt_kit_wheel_lib_dirs() {
  "$1" - <<'EOF' 2>/dev/null
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
dirs = set()
for root in nvidia.__path__:
    for lib in glob.glob(os.path.join(root, "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(os.path.realpath(lib)))
print("\n".join(sorted(dirs)))
EOF
}

dpt_kit_cuda_lib_dirs() {
  local dirs=() py seen=" "
  if [[ -n "${DPT_KIT_CUDA_LIBS:-}" ]]; then
    IFS=: read -r -a dirs <<<"$DPT_KIT_CUDA_LIBS"
  fi
  for py in "${DPT_KIT_PYTHON:-}" "$(command -v python3 || true)" /opt/torch/.venv/bin/python3; do
    [[ -n "$py" && -x "$py" && "$seen" != *" $py "* ]] || continue
    seen+="$py "
    while IFS= read -r d; do [[ -n "$d" ]] && dirs+=("$d"); done < <(dpt_kit_wheel_lib_dirs "$py")
  done
  local cuda
  for cuda in "${CUDA_HOME:-}" /usr/local/cuda; do
    [[ -n "$cuda" ]] || continue
    dirs+=("$cuda/lib64" "$cuda/lib" "$cuda/targets/x86_64-linux/lib")
  done
  # The driver (libcuda.so.1) where containers mount it, when the loader's cache lacks it.
  dirs+=(/usr/local/nvidia/lib64 /usr/local/nvidia/lib)
  local d out="" real
  for d in "${dirs[@]}"; do
    [[ -d "$d" ]] || continue
    real=$(cd "$d" && pwd -P)
    [[ ":$out:" == *":$real:"* ]] || out+="${out:+:}$real"
  done
  printf '%s\n' "$out"
}

if [[ -z "${DPT_KIT_LD_PATH:-}" ]]; then
  DPT_KIT_LD_PATH="$DPT_KIT/lib"
  dpt_kit_cuda=$(dpt_kit_cuda_lib_dirs)
  [[ -n "$dpt_kit_cuda" ]] && DPT_KIT_LD_PATH+=":$dpt_kit_cuda"
  unset dpt_kit_cuda
  export DPT_KIT_LD_PATH
fi
