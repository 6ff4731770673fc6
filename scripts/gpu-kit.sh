#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Makes the GPU first-run kit: one compressed archive, OUT_DIR/dptrain-gpu-kit.tar.xz (.tar.gz
# where xz is missing), for a GPU machine that has the NVIDIA driver and the CUDA libraries
# (toolkit, or PyTorch's nvidia-* wheels) but none of dptrain's other dependencies and no way to
# install them. Unpacked, dptrain-gpu-kit/ holds:
#   bin/        train, dpt-bench, dpt-data: wrappers that run libexec/ with the kit's library path
#   libexec/    the binaries;  tests/: the GoogleTest executables;  tests.tsv: their entries
#   lib/        every shared library they need except glibc's and CUDA's (oneDNN, OpenBLAS, HDF5
#               and theirs, libstdc++, libgomp, ... and Open MPI's when the build has MPI)
#   data/       fmnist-small.h5: the first 12800 training and 2000 test images of Fashion-MNIST
#   tests/{kernels,nn}/fixtures/  PyTorch's reference files of kernels_test and nn_test
#   bench/compare_pytorch.py (+ requires.py, machine.py), scripts/gpu-first-run.sh, gpu-kit-tests.sh, gpu-kit-env.sh,
#   MANIFEST.txt (build settings, where each library came from, the newest glibc symbol needed)
#
# Usage: scripts/gpu-kit.sh [--from-build DIR] OUT_DIR
#   Without --from-build: configures and builds build-kit/ (Release, -Werror, DPT_CUDA=ON,
#   DPT_MPI=OFF, CUDA architectures $DPT_KIT_CUDA_ARCHITECTURES, default "80-real;90": sm_80 and
#   sm_90 code plus sm_90 PTX). MPI is left out: the kit is for one GPU, and Open MPI's runtime
#   (its launcher, plugins and help files, found by install prefix) does not travel as a few
#   libraries. --from-build DIR packs an existing build instead (any configuration; the tests of
#   the kit use the build under test).
# Environment: DPT_FASHION_MNIST_DIR (default /usr/share/datasets/fashion-mnist), DPT_KIT_COMPRESS
# (xz, the default, or gzip), DPT_KIT_CUDA_ARCHITECTURES.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
usage() { sed -n '15,23p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
build=""
while (($#)); do
  case "$1" in
    --from-build) build=$(cd "${2:?--from-build needs a build directory}" && pwd); shift 2 ;;
    -h|--help) usage ;;
    -*) echo "gpu-kit: unknown option '$1'" >&2; usage ;;
    *) break ;;
  esac
done
(($# == 1)) || usage
mkdir -p "$1"
out=$(cd "$1" && pwd)
limit_mib=60

die() { echo "gpu-kit: error: $*" >&2; exit 1; }
for tool in ldd python3 tar; do
  command -v "$tool" >/dev/null || die "$tool is needed to make the kit"
done

if [[ -z "$build" ]]; then
  build="$repo/build-kit"
  generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  cmake -S "$repo" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DDPT_WERROR=ON \
        -DDPT_CUDA=ON -DDPT_MPI=OFF \
        "-DCMAKE_CUDA_ARCHITECTURES=${DPT_KIT_CUDA_ARCHITECTURES:-80-real;90}"
  cmake --build "$build" -j "$(nproc)"
fi
for app in train dpt-bench dpt-data; do
  [[ -x "$build/bin/$app" ]] || die "$build/bin/$app is missing: build first (cmake --build)"
done

staging=$(mktemp -d "${TMPDIR:-/tmp}/dpt-gpu-kit.XXXXXX")
trap 'rm -rf "$staging"' EXIT
kit="$staging/dptrain-gpu-kit"
mkdir -p "$kit"/{bin,libexec,tests,lib,data,bench,scripts}

# --- Test entries: ctest's own list, made kit-relative (tests.tsv, one entry a line:
# name, labels, timeout, skip code, extra environment, program, arguments; tab-separated).
# An entry under mpiexec with 1 rank runs its executable directly (a world of one, as in a
# DPT_MPI=OFF build); entries with more ranks or scripts from the source tree stay out and are
# listed in MANIFEST.txt.
(cd "$build" && ctest --show-only=json-v1) >"$staging/ctest.json"
python3 - "$staging/ctest.json" "$build" "$kit" <<'EOF'
import json, os, shutil, sys
tests_json, build, kit = sys.argv[1:]
tests = json.load(open(tests_json))["tests"]
rows, left_out = [], []
for t in tests:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    cmd = t.get("command") or []
    if cmd and os.path.basename(cmd[0]) in ("mpiexec", "mpirun"):
        exes = [i for i, c in enumerate(cmd) if c.startswith(build + "/")]
        ranks = next((cmd[i + 1] for i, c in enumerate(cmd[:-1]) if c in ("-n", "-np")), None)
        if not exes or ranks != "1":
            left_out.append((t["name"], f"needs mpiexec with {ranks} ranks"))
            continue
        cmd = cmd[exes[0]:]
    if not cmd or not cmd[0].startswith(build + "/") or not os.access(cmd[0], os.X_OK):
        left_out.append((t["name"], "runs a script of the source tree"))
        continue
    rel = os.path.relpath(cmd[0], build)
    if not rel.startswith("tests/"):
        left_out.append((t["name"], "not a test executable"))
        continue
    dest = os.path.join(kit, "tests", os.path.basename(cmd[0]))
    shutil.copy2(cmd[0], dest)
    args = [a.replace(build + "/bin", "bin") for a in cmd[1:]]
    if any(a.startswith("/") for a in args):
        left_out.append((t["name"], "takes absolute paths of the build machine"))
        continue
    env = [e for e in props.get("ENVIRONMENT", [])
           if not e.startswith(("DPT_BIN_DIR=", "DPT_SOURCE_DIR=", "OMPI_ALLOW_RUN_AS_ROOT"))]
    skip = props.get("SKIP_RETURN_CODE")
    rows.append([t["name"], ",".join(props.get("LABELS", [])) or "-",
                 str(int(props.get("TIMEOUT", 1500))), "-" if skip is None else str(int(skip)),
                 ";".join(env) or "-", "tests/" + os.path.basename(cmd[0])] + args)
with open(os.path.join(kit, "tests.tsv"), "w") as f:
    f.write("# name\tlabels\ttimeout_s\tskip_code\tenvironment\tprogram\targuments...\n")
    for r in rows:
        f.write("\t".join(r) + "\n")
with open(os.path.join(kit, "tests-left-out.txt"), "w") as f:
    for name, why in left_out:
        f.write(f"{name}: {why}\n")
print(f"gpu-kit: {len(rows)} test entries in the kit, {len(left_out)} left out")
EOF

for app in train dpt-bench dpt-data; do
  cp "$build/bin/$app" "$kit/libexec/"
  cat >"$kit/bin/$app" <<EOF
#!/usr/bin/env bash
# Runs libexec/$app with the kit's libraries (scripts/gpu-kit-env.sh).
source "\$(dirname "\${BASH_SOURCE[0]}")/../scripts/gpu-kit-env.sh"
LD_LIBRARY_PATH="\$DPT_KIT_LD_PATH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$DPT_KIT/libexec/$app" "\$@"
EOF
  chmod +x "$kit/bin/$app"
done

# --- Libraries. Not packed: glibc's (they must match the host's libc) and CUDA's (they must match
# the host's driver; gpu-kit-env.sh finds them there).
glibc_re='^(ld-linux.*|libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|libnsl|libBrokenLocale|libnss_[a-z]+|libthread_db)\.so'
cuda_re='^lib(cuda|cudart|cublas|cublasLt|cudnn[a-z_]*|nccl|nvrtc[a-z-]*|nvJitLink|nvidia-ml|cufft|curand|cusolver|cusparse|nvToolsExt)\.so'
elfs=("$kit"/libexec/* "$kit"/tests/*)
origins="$staging/origins.txt"
: >"$origins"
for exe in "${elfs[@]}"; do
  # ldd lists every library of the closure, its own needs included.
  while read -r soname arrow path _; do
    [[ "$arrow" == "=>" ]] || continue
    if [[ "$soname" =~ $glibc_re || "$soname" =~ $cuda_re ]]; then
      continue
    fi
    [[ "$path" == not ]] && die "$(basename "$exe") needs $soname, which is not found here"
    if [[ ! -e "$kit/lib/$soname" ]]; then
      cp -L "$path" "$kit/lib/$soname"
      echo "$soname <- $(readlink -f "$path")" >>"$origins"
    fi
  done < <(ldd "$exe")
done

# Executables: RUNPATH $ORIGIN/../lib instead of the build machine's folders (CMake's own ELF
# editor; the new path is never longer than the build's, which it requires).
cat >"$staging/rpath.cmake" <<'EOF'
foreach(f IN LISTS FILES)
  file(READ_ELF "${f}" RUNPATH runpath)
  string(REPLACE ";" ":" runpath "${runpath}")
  if(runpath)
    file(RPATH_CHANGE FILE "${f}" OLD_RPATH "${runpath}" NEW_RPATH "$ORIGIN/../lib")
  endif()
endforeach()
EOF
cmake "-DFILES=$(IFS=';'; echo "${elfs[*]}")" -P "$staging/rpath.cmake" >/dev/null

# --- A small Fashion-MNIST: the first N images of each split, through dpt-data's own importer.
fmnist=${DPT_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
[[ -f "$fmnist/train-images-idx3-ubyte.gz" ]] ||
  die "$fmnist has no Fashion-MNIST (Debian package dataset-fashion-mnist, or set DPT_FASHION_MNIST_DIR)"
python3 - "$fmnist" "$staging/fmnist" <<'EOF'
import gzip, os, struct, sys
src, dst = sys.argv[1:]
os.makedirs(dst, exist_ok=True)
for prefix, n in (("train", 12800), ("t10k", 2000)):
    for kind, item in (("images-idx3", 28 * 28), ("labels-idx1", 1)):
        name = f"{prefix}-{kind}-ubyte.gz"
        with gzip.open(os.path.join(src, name)) as f:
            magic, count = struct.unpack(">II", f.read(8))
            rest = f.read(4 * ((magic & 0xFF) - 1))
            body = f.read(n * item)
        assert count >= n and len(body) == n * item, f"{name}: fewer than {n} items"
        with gzip.open(os.path.join(dst, name), "wb") as f:
            f.write(struct.pack(">II", magic, n) + rest + body)
EOF
"$build/bin/dpt-data" import-fashion-mnist --src "$staging/fmnist" "$kit/data/fmnist-small.h5"

cp "$repo/bench/compare_pytorch.py" "$repo/bench/requires.py" "$repo/bench/machine.py" "$kit/bench/"
cp "$repo/scripts/gpu-first-run.sh" "$repo/scripts/gpu-kit-tests.sh" "$repo/scripts/gpu-kit-env.sh" \
   "$kit/scripts/"
# PyTorch's reference files, at their source-tree paths: the kit is the tests' DPT_SOURCE_DIR.
for fixtures in tests/kernels/fixtures tests/nn/fixtures; do
  mkdir -p "$kit/$fixtures"
  cp "$repo/$fixtures"/*.txt "$kit/$fixtures/"
done

# --- MANIFEST.txt: what was built how, and what came from where.
config="$build/generated/runtime/config.h"
# newest PREFIX FILES...: the highest symbol version PREFIX_x.y named in FILES.
newest() { local p=$1; shift; objdump -T "$@" 2>/dev/null | grep -o "${p}_[0-9.]*" | sort -uV | tail -1; }
{
  echo "dptrain GPU kit, made $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n)"
  echo "source: $(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "build: $build"
  grep -E '^(CMAKE_BUILD_TYPE|DPT_CUDA|DPT_MPI|CMAKE_CUDA_ARCHITECTURES|CMAKE_CUDA_COMPILER):' \
    "$build/CMakeCache.txt" | sed 's/^/  /'
  [[ -f "$config" ]] && grep -E 'define DPT_HAVE_' "$config" | sed 's/^#define /  /'
  # The versions compiled against: the host's cuDNN and NCCL should be these or newer.
  for var in DPT_CUDNN_INCLUDE_DIR DPT_NCCL_INCLUDE_DIR; do
    dir=$(sed -n "s/^$var:[A-Z]*=//p" "$build/CMakeCache.txt")
    [[ -n "$dir" ]] || continue
    grep -hE '^#define (CUDNN_(MAJOR|MINOR|PATCHLEVEL)|NCCL_(MAJOR|MINOR|PATCH)) ' \
      "$dir"/cudnn_version.h "$dir"/nccl.h 2>/dev/null | awk '{printf "  %s %s\n", $2, $3}'
  done | sort -u
  nvcc=$(sed -n 's/^CMAKE_CUDA_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
  [[ -x "$nvcc" ]] && echo "  $("$nvcc" --version | grep -o 'release [0-9.]*' | sed 's/release/CUDA/')"
  if command -v objdump >/dev/null; then
    echo "needs glibc symbols up to $(newest GLIBC "${elfs[@]}" "$kit"/lib/*) (the host's glibc)" \
         "and libstdc++ up to $(newest GLIBCXX "${elfs[@]}") (packed)"
  fi
  echo "CUDA libraries the binaries need (from the host):"
  for exe in "${elfs[@]}"; do ldd "$exe"; done | awk '{print $1}' | grep -E "$cuda_re" | sort -u |
    sed 's/^/  /'
  echo "packed libraries (kit lib/ <- build machine):"
  sort "$origins" | sed 's/^/  /'
  echo "test entries not in the kit:"
  sed 's/^/  /' "$kit/tests-left-out.txt"
} >"$kit/MANIFEST.txt"
rm "$kit/tests-left-out.txt"

# --- Compress: xz where present (about 60% of gzip's size), else gzip; DPT_KIT_COMPRESS=gzip
# chooses gzip (faster to make: the kit's own test uses it).
rm -f "$out"/dptrain-gpu-kit.tar.*
if [[ "${DPT_KIT_COMPRESS:-xz}" == xz ]] && command -v xz >/dev/null; then
  archive="$out/dptrain-gpu-kit.tar.xz"
  tar -C "$staging" -cf - dptrain-gpu-kit | xz -6 -T0 >"$archive"
else
  archive="$out/dptrain-gpu-kit.tar.gz"
  tar -C "$staging" -cf - dptrain-gpu-kit | gzip -9 >"$archive"
fi
bytes=$(stat -c %s "$archive")
mib=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')
unpacked=$(du -sm "$kit" | cut -f1)
echo "gpu-kit: $archive: $mib MiB ($unpacked MiB unpacked, $(ls "$kit/lib" | wc -l) libraries)"
((bytes < limit_mib * 1048576)) || die "$archive is $mib MiB, over the $limit_mib MiB limit"
