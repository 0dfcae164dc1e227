#!/usr/bin/env bash
# The CPU half of a Jetson deployment, run on x86 under qemu-aarch64 next to the same run natively.
#
#   benchmarks/aarch64/run.sh [--faces N] [--out DIR] [--ort VERSION] [--prepare-only]
#
# Builds (once, cached outside the repository) an arm64 Debian sysroot with Python 3.11 and an aarch64
# site folder with the runtime's wheels, then runs benchmarks/aarch64/compare.py, which runs every step
# under qemu-aarch64 and natively and writes report.json + report.md to --out.
#
# Needs: Debian/Ubuntu with apt (root, for `dpkg --add-architecture arm64` and `apt-get update`), qemu-user,
# pip; ../shared/data for the parity and pipeline steps.
# Environment: EDGEEMO_AARCH64_CACHE (default ~/.cache/edgeemo-aarch64), PYTHON (x86 interpreter with
# edgeemo's runtime installed, default python3), QEMU_AARCH64 (default qemu-aarch64).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${EDGEEMO_AARCH64_CACHE:-$HOME/.cache/edgeemo-aarch64}
python=${PYTHON:-python3}
qemu=${QEMU_AARCH64:-qemu-aarch64}
faces=1000
out="$repo/benchmarks/results/aarch64"
ort=""
prepare_only=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --faces) faces=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ort) ort=$2; shift 2 ;;
    --prepare-only) prepare_only=1; shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# The arm64 packages Python 3.11 and the wheels' native code load (Debian bookworm names).
debs=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libstdc++6 libgcc-s1 zlib1g libexpat1
  libffi8 libssl3 libgomp1 libbz2-1.0 liblzma5 libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1
  libcrypt1 libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
  libdb5.3)

build_sysroot() {
  local root="$cache/sysroot"
  [[ -f "$root/.complete" ]] && return 0
  echo "== sysroot: $root" >&2
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  apt-get update -qq
  rm -rf "$cache/debs" "$root"
  mkdir -p "$cache/debs" "$root"
  (cd "$cache/debs" && apt-get download -qq "${debs[@]/%/:arm64}")
  for d in "$cache/debs"/*.deb; do dpkg -x "$d" "$root"; done
  touch "$root/.complete"
}

# Same versions as the x86 interpreter's, so the two columns differ only by the CPU (override ORT with --ort).
native_version() {
  "$python" -c "import importlib.metadata as m; print(m.version('$1'))"
}

build_site() {
  local site=$1 ortv=$2
  [[ -f "$site/.complete" ]] && return 0
  echo "== aarch64 site folder: $site" >&2
  rm -rf "$site"
  "$python" -m pip install -q --only-binary=:all: --platform manylinux_2_28_aarch64 \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --python-version 3.11 --implementation cp \
    --target "$site" "numpy==$(native_version numpy)" \
    "opencv-python-headless==$(native_version opencv-python-headless)" "onnxruntime==$ortv" \
    "typer==$(native_version typer)" "rich==$(native_version rich)"
  touch "$site/.complete"
}

[[ -n "$ort" ]] || ort=$(native_version onnxruntime)
build_sysroot
site="$cache/site-ort$ort"
build_site "$site" "$ort"
[[ $prepare_only == 1 ]] && { echo "$cache/sysroot $site"; exit 0; }

exec "$python" "$here/compare.py" --sysroot "$cache/sysroot" --site "$site" --qemu "$qemu" --faces "$faces" \
  --out "$out"
