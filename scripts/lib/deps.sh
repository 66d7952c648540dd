# scripts/lib/deps.sh: installs the Debian packages moonrpc needs, when
# missing. Sourced by scripts/test and scripts/demo; DEVELOPERS.md lists the
# same packages. Set MOONRPC_NO_APT=1 to skip the check (e.g. not Debian).

MOONRPC_PACKAGES=(
  gcc make cmake pkg-config
  lua5.4 liblua5.4-dev
  libuv1-dev libmsgpack-dev zlib1g-dev libcjson-dev
  libcurl4-openssl-dev libhiredis-dev
  libedit-dev
  clang libclang-rt-14-dev
  lua-busted lua-socket lua-dkjson
  etcd-server etcd-client redis-server
  lua-luv lua-luv-dev
)

moonrpc_missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

moonrpc_install_deps() {
  [ "${MOONRPC_NO_APT:-0}" = 1 ] && return 0
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "moonrpc: not a Debian system; install these yourself: ${MOONRPC_PACKAGES[*]}" >&2
    return 0
  fi
  local missing
  missing=$(moonrpc_missing_packages "${MOONRPC_PACKAGES[@]}" "$@")
  [ -z "$missing" ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "moonrpc: installing missing packages:" $missing
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
}

moonrpc_build() {
  local dir=${1:-build}
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
