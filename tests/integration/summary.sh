# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Sourced by the shell tests that launch N ranks: reads the run summary (the last line of a
# `train --metrics` file, event "summary") so that a test can check the job really had N ranks. A
# launcher that started N separate one-rank jobs would otherwise pass every check that looks only at
# rank 0's losses or exit status.
#   source "$(dirname "$0")/summary.sh"
#   summary_field FILE KEY         prints KEY of FILE's summary line; fails (status 1) without one
#   expect_world_size FILE N       status 0 when the summary says world_size N, else prints why

summary_python=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../scripts" && pwd)/python
summary_jq=${summary_jq-jq}  # set it empty before sourcing to use Python where jq is installed

# summary_field FILE KEY: jq where installed, else a python3 that has json (scripts/python).
summary_field() {
  local file=$1 key=$2 last
  [[ -s "$file" ]] || { echo "no metrics file $file" >&2; return 1; }
  last=$(tail -n 1 "$file")
  if [[ -n "$summary_jq" ]] && command -v "$summary_jq" >/dev/null; then
    # shellcheck disable=SC2016  # $key is a jq variable
    "$summary_jq" -e -r --arg key "$key" 'if .event == "summary" and has($key) then .[$key] else error("") end' \
      <<<"$last" 2>/dev/null || { echo "$file: the last line is not a summary with '$key': $last" >&2; return 1; }
  else
    "$summary_python" --needs json -c '
import json, sys
key, line = sys.argv[1], sys.argv[2]
try:
    record = json.loads(line)
except ValueError:
    record = {}
if record.get("event") != "summary" or key not in record:
    sys.exit(1)
print(record[key])' "$key" "$last" || { echo "$file: the last line is not a summary with '$key': $last" >&2; return 1; }
  fi
}

# expect_world_size FILE N
expect_world_size() {
  local file=$1 expected=$2 got
  got=$(summary_field "$file" world_size) || return 1
  if [[ "$got" != "$expected" ]]; then
    echo "$file: the summary says world_size $got, expected $expected (separate one-rank jobs?)" >&2
    return 1
  fi
}
