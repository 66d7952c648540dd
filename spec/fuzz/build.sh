#!/usr/bin/env bash
# spec/fuzz/build.sh [BUILD_DIR]: builds the libFuzzer harnesses with clang
# into BUILD_DIR/fuzz (default build/fuzz), apart from the main gcc build.
#
# The core (core/src) and the Lua binding (lua/src) are compiled once more
# with -fsanitize=fuzzer-no-link,address,undefined into two archives; each
# harness spec/fuzz/fuzz_<name>.c is linked with -fsanitize=fuzzer against
# them. Incremental: a source is recompiled when it is newer than its
# object, everything when a header changed. Also writes the seeds taken
# from ../shared/rpcx-vectors (spec/fuzz/vector_seeds.lua) into
# BUILD_DIR/fuzz/vseeds/<name>/, so the project tree stays as it was.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(mkdir -p "${1:-$src/build}" && cd "${1:-$src/build}" && pwd)
out=$build/fuzz
CC=${FUZZ_CC:-clang}
mkdir -p "$out/obj/core" "$out/obj/lua"

pkgs="libuv zlib libcurl libcjson hiredis msgpack lua5.4 libedit"
# shellcheck disable=SC2086
PKG_CFLAGS=$(pkg-config --cflags $pkgs)
# shellcheck disable=SC2086
PKG_LIBS=$(pkg-config --libs $pkgs)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -fPIC -Wall -Wno-unused-parameter $SAN \
 -I$src/core/include -I$src/core/src -I$src/lua/src $PKG_CFLAGS"

# A header newer than the last build invalidates every object.
stamp=$out/obj/.stamp
if [ -f "$stamp" ] && [ -n "$(find "$src/core" "$src/lua/src" "$src/spec/fuzz" \
      -name '*.h' -newer "$stamp" -print -quit)" ]; then
  rm -f "$out"/obj/core/*.o "$out"/obj/lua/*.o
fi

# compile LIST_FILE OBJDIR: each source whose object is missing or older.
compile() {
  local list=$1 dir=$2 todo=()
  while read -r f; do
    local o="$dir/$(echo "${f#"$src"/}" | tr / _).o"
    if [ ! -f "$o" ] || [ "$f" -nt "$o" ]; then todo+=("$f:$o"); fi
  done <"$list"
  # An object whose source is gone goes too.
  for o in "$dir"/*.o; do
    [ -e "$o" ] || continue
    grep -qxF "$(basename "$o" .o)" <(sed "s|^$src/||; s|/|_|g; s|\.c\$|.c|" "$list") || rm -f "$o"
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  printf '%s\n' "${todo[@]}" | xargs -P"${FUZZ_JOBS:-2}" -I{} sh -c \
    'f=${1%%:*}; o=${1#*:}; '"$CC $CFLAGS"' -fsanitize=fuzzer-no-link -c "$f" -o "$o"' _ {}
}

find "$src/core/src" -name '*.c' | sort >"$out/obj/core.list"
find "$src/lua/src" -name '*.c' | sort >"$out/obj/lua.list"
compile "$out/obj/core.list" "$out/obj/core"
compile "$out/obj/lua.list" "$out/obj/lua"
# An archive is remade only when one of its objects changed (or one went),
# so that the harnesses are relinked only then.
for part in core lua; do
  a=$out/lib$part.a
  if [ ! -f "$a" ] || [ -n "$(find "$out/obj/$part" -name '*.o' -newer "$a" -print -quit)" ] ||
     [ "$(ar t "$a" | wc -l)" -ne "$(find "$out/obj/$part" -name '*.o' | wc -l)" ]; then
    rm -f "$a"
    ar rcs "$a" "$out"/obj/$part/*.o
  fi
done

for h in "$src"/spec/fuzz/fuzz_*.c; do
  name=$(basename "$h" .c)
  if [ ! -x "$out/$name" ] || [ "$h" -nt "$out/$name" ] || [ "$out/libcore.a" -nt "$out/$name" ]; then
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer "$h" "$out/liblua.a" "$out/libcore.a" $PKG_LIBS -lm \
      -o "$out/$name"
  fi
done
touch "$stamp"

# Seeds from the captured rpcx vectors, when they are there.
vec=$src/../shared/rpcx-vectors/vectors.json
if [ -f "$vec" ]; then
  lua5.4 "$src/spec/fuzz/vector_seeds.lua" "$vec" "$out/vseeds"
fi
