# SPDX-License-Identifier: MIT
# Sourced by the integration scripts that compare runs bit for bit; needs $py (scripts/python).
#   digest CHECKPOINT METRICS   sha256 of every /model and /optimizer dataset and of the logged
#                               step and eval losses: the bits, not a tolerance
#   same_state A.h5 B.h5        exit 0 when every /model and /optimizer dataset is the same bits
#   show_differences A.h5 B.h5  one line per dataset that differs, with its largest difference

digest() {
  "$py" --needs h5py - "$1" "$2" <<'PY'
import hashlib, json, sys
import h5py
h = hashlib.sha256()
with h5py.File(sys.argv[1], "r") as f:
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for n in sorted(names):
        if n.startswith(("model/", "optimizer/")):
            h.update(n.encode()); h.update(f[n][()].tobytes())
with open(sys.argv[2]) as m:
    for r in map(json.loads, m):
        if r.get("event") in ("step", "eval"):
            h.update(repr((r["event"], r.get("step"), r["loss"], r.get("accuracy"))).encode())
print(h.hexdigest())
PY
}

same_state() {
  "$py" --needs h5py - "$1" "$2" <<'PY'
import sys, h5py
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
bad = []
a.visititems(lambda n, o: bad.append(n) if isinstance(o, h5py.Dataset) and n.startswith(("model/", "optimizer/")) and o[()].tobytes() != b[n][()].tobytes() else None)
sys.exit(1 if bad else 0)
PY
}

show_differences() {
  "$py" --needs h5py - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
def visit(n, o):
    if isinstance(o, h5py.Dataset) and n.startswith(("model/", "optimizer/")):
        x, y = o[()], b[n][()]
        if x.tobytes() != y.tobytes():
            print(f"  {n}: max |diff| {np.max(np.abs(x.astype(np.float64) - y)):.3g}")
a.visititems(visit)
PY
}
