#!/usr/bin/env bash
# install_check.sh BUILD: what a C host does with an installed moonrpc.
# Installs BUILD into a temporary prefix, then builds spec/tools/consumer
# three ways and runs each program (a server and a client on one loop):
#   find_package(moonrpc) with moonrpc::moonrpc and moonrpc::moonrpc_static;
#   pkg-config --cflags --libs moonrpc (shared);
#   pkg-config --static --libs moonrpc against libmoonrpc.a.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libmoonrpc.a | head -n 1)")
[ -f "$libdir/libmoonrpc.a" ] || { echo "no libmoonrpc.a installed" >&2; exit 1; }

cmake -S "$here/consumer" -B "$tmp/c" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/c" >/dev/null
LD_LIBRARY_PATH=$libdir "$tmp/c/uses_shared"
"$tmp/c/uses_static"
echo "find_package(moonrpc): ok"

export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --variable=includedir moonrpc)" -ef "$prefix/include" ] ||
  { echo "moonrpc.pc does not point at the prefix it was installed to" >&2; exit 1; }
# shellcheck disable=SC2046
cc -o "$tmp/pc_shared" "$here/consumer/consumer.c" $(pkg-config --cflags --libs moonrpc)
LD_LIBRARY_PATH=$libdir "$tmp/pc_shared"
# shellcheck disable=SC2046
cc -o "$tmp/pc_static" "$here/consumer/consumer.c" $(pkg-config --cflags moonrpc) \
  -Wl,-Bstatic -lmoonrpc -Wl,-Bdynamic $(pkg-config --static --libs moonrpc | sed 's/-lmoonrpc//')
"$tmp/pc_static"
echo "pkg-config moonrpc (shared and --static): ok"
