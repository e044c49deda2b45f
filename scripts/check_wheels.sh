#!/usr/bin/env bash
# Check that every supported target installs from binary wheels alone, without installing anything here:
# `pip download --only-binary=:all:` per machine (x86_64, aarch64) and Python (3.10, 3.11) for requirements.txt, the
# GPU file where PyPI has onnxruntime-gpu (x86_64) and the tflite-runtime file; prints each target's download size.
# Usage: bash scripts/check_wheels.sh [TARGET ...]   (TARGET like aarch64-3.10-base; none: all of them)
# KEEP=DIR keeps the wheels there (one folder per target); otherwise they go to a temporary folder that is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
# pip evaluates environment markers (python_version) with the interpreter it runs in, whatever --python-version
# says, so each Python version is resolved by an interpreter of that version: pyenv's, else pythonX.Y on PATH.
python_for() {
  local found
  found=$(ls -d ~/.pyenv/versions/"$1".* 2>/dev/null | sort -V | tail -1)
  if [ -n "$found" ] && [ -x "$found/bin/python" ]; then echo "$found/bin/python"; return; fi
  command -v "python$1" || { echo "error: no Python $1 found (pyenv or python$1 on PATH)" >&2; return 1; }
}
# manylinux tags up to glibc 2.35 (Ubuntu 22.04 under JetPack 6; Raspberry Pi OS 12 has 2.36, x86_64 distributions
# newer): a wheel that resolves here installs on all of them.
platforms() {
  local arch=$1 minor
  echo "--platform manylinux2014_$arch"
  for minor in $(seq 17 35); do echo "--platform manylinux_2_${minor}_$arch"; done
}
# platform_machine is evaluated on this machine too, so requirements that depend on the target's machine are named here: jetson-stats for aarch64 (its line in requirements-base.txt).
machine_extras() {
  [ "$1" = aarch64 ] && grep '^jetson-stats' requirements-base.txt | cut -d';' -f1 || true
}
files_for() {
  case $1 in
    base) echo "-r requirements.txt" ;;
    gpu) echo "-r requirements-gpu.txt" ;;
    tflite) echo "-r requirements.txt -r requirements-tflite-runtime.txt" ;;
  esac
}
ALL="x86_64-3.10-base x86_64-3.11-base aarch64-3.10-base aarch64-3.11-base x86_64-3.10-gpu x86_64-3.11-gpu
aarch64-3.11-tflite x86_64-3.10-tflite"
targets=${*:-$ALL}
root=${KEEP:-$(mktemp -d)}
[ -n "${KEEP:-}" ] || trap 'rm -rf "$root"' EXIT
failed=0
printf '%-22s %9s %6s  %s\n' target MB wheels result
for t in $targets; do
  IFS=- read -r arch py set <<<"$t"
  dest="$root/$t"
  mkdir -p "$dest"
  log="$dest.log"
  PY=$(python_for "$py")
  # shellcheck disable=SC2046
  if "$PY" -m pip download -q -d "$dest" --only-binary=:all: --implementation cp --python-version "$py" \
      --abi "cp${py/./}" --abi abi3 --abi none $(platforms "$arch") \
      $(files_for "$set") $(machine_extras "$arch") >"$log" 2>&1; then
    result=ok
  else
    result="FAILED: $(grep -E '^ERROR' "$log" | head -1)"
    failed=1
  fi
  mb=$(du -sm "$dest" | cut -f1)
  printf '%-22s %9s %6s  %s\n' "$t" "$mb" "$(find "$dest" -name '*.whl' | wc -l)" "$result"
done
exit $failed
