#!/usr/bin/env bash
# The CPU half of a Jetson deployment, run on x86 under qemu-aarch64 next to the same run natively.
#
#   benchmarks/aarch64/run.sh [--faces N] [--out DIR] [--ort VERSION] [--prepare-only] [compare.py options]
#
# Builds (once, cached outside the repository) an arm64 Debian sysroot with Python 3.11 and an aarch64
# site folder with the runtime's wheels, then runs benchmarks/aarch64/compare.py, which runs every step
# under qemu-aarch64 and natively and writes report.json + report.md to --out.
#
# Needs: Debian/Ubuntu with apt (root, for `dpkg --add-architecture arm64` and `apt-get update`), qemu-user,
# pip; ../shared/data for the parity and pipeline steps.
# Environment: EDGEEMO_AARCH64_CACHE (default ~/.cache/edgeemo-aarch64), PYTHON (x86 interpreter with
# edgeemo's runtime and PyAV installed, default python3), QEMU_AARCH64 (default: Debian trixie's, cached).
set -euo pipefail

argv="$*"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${EDGEEMO_AARCH64_CACHE:-$HOME/.cache/edgeemo-aarch64}
python=${PYTHON:-python3}
qemu=${QEMU_AARCH64:-}
faces=1000
out="$repo/benchmarks/results/aarch64"
ort=""
prepare_only=0
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --faces) faces=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --ort) ort=$2; shift 2 ;;
    --prepare-only) prepare_only=1; shift ;;
    *) extra+=("$1"); shift ;;  # passed on to compare.py (e.g. --steps parity --thesis-faces 20)
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

# Debian trixie's qemu-user (10.0, static binaries), fetched with a private apt configuration (the host's sources
# are untouched): bookworm's qemu 7.2 passes the host's x86 /proc/cpuinfo to aarch64 programs, and onnxruntime
# >= 1.28 crashes parsing it (docs/jetson.md); qemu >= 8.1 shows an emulated Arm /proc/cpuinfo.
fetch_qemu() {
  local dir="$cache/qemu"
  [[ -x "$dir/usr/bin/qemu-aarch64" ]] && return 0
  echo "== qemu-user from Debian trixie: $dir" >&2
  mkdir -p "$dir/lists/partial" "$dir/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache::Archives=$dir/archives" -o APT::Architectures::=amd64
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=)
  apt-get "${opts[@]}" update -qq
  (cd "$dir" && apt-get "${opts[@]}" download -qq qemu-user)
  dpkg -x "$dir"/qemu-user_*.deb "$dir"
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
    "typer==$(native_version typer)" "rich==$(native_version rich)" "av==$(native_version av)"
  touch "$site/.complete"
}

[[ -n "$ort" ]] || ort=$(native_version onnxruntime)
build_sysroot
[[ -n "$qemu" ]] || { fetch_qemu; qemu="$cache/qemu/usr/bin/qemu-aarch64"; }
site="$cache/site-ort$ort"
build_site "$site" "$ort"
[[ $prepare_only == 1 ]] && { echo "$cache/sysroot $site"; exit 0; }

exec "$python" "$here/compare.py" --sysroot "$cache/sysroot" --site "$site" --qemu "$qemu" --faces "$faces" \
  --out "$out" --work "$cache/work" --command "benchmarks/aarch64/run.sh $argv" \
  ${extra[@]+"${extra[@]}"}
