#!/bin/sh
# deploy/build.sh — the release build of wbcache, installed under a prefix.
#
#   deploy/build.sh PREFIX [BUILD_DIR]
#
# The one build recipe of the container image: deploy/Containerfile runs it in
# its build stage, and CI (deploy/check-k8s) runs it natively, from a copy of
# exactly the files the Containerfile copies, so the image builds what CI
# built. BUILD_DIR defaults to build/release under the source tree; WB_JOBS
# sets the parallel jobs (default: all cores).
set -eu

usage() { echo "usage: $0 PREFIX [BUILD_DIR]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
src=$(cd "$(dirname "$0")/.." && pwd)
prefix=$1
build=${2:-$src/build/release}
jobs=${WB_JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S "$src" -B "$build" -DWB_TESTS=OFF -DCMAKE_BUILD_TYPE=Release
cmake --build "$build" -j"$jobs"
cmake --install "$build" --prefix "$prefix"
