-- luarocks --lua-version=5.4 make   (from a checkout of moonrpc)
rockspec_format = "3.0"
package = "moonrpc"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout with `luarocks make`
}
description = {
  summary = "rpcx-compatible RPC for Lua 5.4 on libuv",
  detailed = [[
moonrpc speaks the rpcx wire protocol byte for byte: services written as Lua
tables of functions can be called by Go rpcx clients, and Lua clients can
call Go rpcx services. Calls yield inside coroutines. The C core
(libmoonrpc) runs on a libuv loop that its host owns.]],
  license = "MIT",
  labels = { "rpc", "rpcx", "libuv", "msgpack" },
}
dependencies = { "lua >= 5.4, < 5.5" }
-- Every library the build links, each with its Debian package, so that a
-- missing one gets luarocks' hint (set LIBUV_DIR=... ) instead of a CMake
-- error: libuv1-dev libmsgpack-dev zlib1g-dev libcjson-dev
-- libcurl4-openssl-dev libhiredis-dev libedit-dev.
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  MSGPACK = { header = "msgpack.h", library = "msgpackc" },
  ZLIB = { header = "zlib.h", library = "z" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
  CURL = { header = "curl/curl.h", library = "curl" },
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
  EDIT = { header = "histedit.h", library = "edit" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    MRPC_LUA_LMOD = "$(LUADIR)",
    MRPC_LUA_CMOD = "$(LIBDIR)",
    MRPC_BUILD_TESTS = "OFF",
    -- The rock carries the Lua module, the command and the bench tools;
    -- libmoonrpc for C hosts comes from `cmake --install`.
    MRPC_INSTALL_CORE = "OFF",
  },
}
