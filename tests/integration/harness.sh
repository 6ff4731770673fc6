# SPDX-License-Identifier: MIT
# Sourced by the integration scripts that train through the binaries in $bin: a scratch directory
# $work removed on exit, Open MPI allowed to run as root, Fashion-MNIST in $work/fm.h5, and the
# ok/fail reporters counting $failures (end a script with `[[ $failures -eq 0 ]]`).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$bin/dpt-data" import-fashion-mnist "$work/fm.h5" >/dev/null || exit 1
failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
