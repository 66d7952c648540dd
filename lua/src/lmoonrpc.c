/* lmoonrpc.c: the entry of the moonrpc.core module (luaopen_moonrpc_core).
 * It builds the module table by wiring the binding's parts together, each
 * adding its functions and classes: the loop and timers (lloop.c), the
 * codecs (lcodec.c), server, client, selector, registry, signals, the
 * REPL's line editor and child processes (lprocess.c). Besides that it
 * holds only the module's own few facts: strerror, exec, the named limits
 * and the version. Nothing calls into this file; the parts share what they
 * need through lbase.h. The Lua API (lua/moonrpc.lua) is built on top of
 * this module. */
#include <string.h>
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <unistd.h>
#include "lmoonrpc.h"
#include "lloop.h"
#include "lcodec.h"

/* strerror(code) -> name, message for a numeric error code. */
static int lmrpc_strerror(lua_State *L) {
  int code = (int)luaL_checkinteger(L, 1);
  lua_pushstring(L, mrpc_err_name(code));
  lua_pushstring(L, mrpc_strerror(code));
  return 2;
}

/* exec(file, {args...}): replaces the process with `file` (looked up on
 * PATH when it has no slash), as execvp does, so that the command's
 * `bench` and `echo` are the programs they run: same PID, same signals.
 * Returns only on failure: nil, code, message. */
static int lmrpc_exec(lua_State *L) {
  const char *file = luaL_checkstring(L, 1);
  lua_Integer i, n;
  const char **argv;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  argv = lua_newuserdatauv(L, (size_t)(n + 2) * sizeof *argv, 0);
  argv[0] = file;
  for (i = 1; i <= n; i++) {
    lua_geti(L, 2, i);
    argv[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the table keeps the string alive */
  }
  argv[n + 1] = NULL;
  fflush(NULL);
  execvp(file, (char *const *)argv);
  lua_pushnil(L);
  lua_pushstring(L, mrpc_err_name(uv_translate_sys_error(errno)));
  lua_pushfstring(L, "cannot run %s: %s", file, strerror(errno));
  return 3;
}

static const luaL_Reg funcs[] = {
  {"exec", lmrpc_exec},
  {"strerror", lmrpc_strerror},
  {NULL, NULL}
};

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

int luaopen_moonrpc_core(lua_State *L) {
  struct sigaction sa;
  /* A write to a peer that reset the connection raises SIGPIPE, which would
   * kill a plain lua process; the failed write is reported as ECONNLOST
   * instead. A host that installed its own handler keeps it. */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  luaL_newlib(L, funcs);
  lmrpc_loop_open(L);
  lmrpc_codec_open(L);
  lmrpc_server_open(L);
  lmrpc_client_open(L);
  lmrpc_selector_open(L);
  lmrpc_registry_open_lib(L);
  lmrpc_signal_open(L);
  lmrpc_edit_open(L);
  lmrpc_process_open(L);
  lua_newtable(L); /* the named limits and their defaults */
  set_int(L, "max_frame", MRPC_DEFAULT_MAX_FRAME);
  set_int(L, "max_meta_pairs", MRPC_DEFAULT_MAX_META_PAIRS);
  set_int(L, "max_meta_bytes", MRPC_DEFAULT_MAX_META_BYTES);
  set_int(L, "max_decompressed", MRPC_DEFAULT_MAX_DECOMPRESSED);
  set_int(L, "max_depth", MRPC_DEFAULT_MAX_DEPTH);
  set_int(L, "max_conns", MRPC_DEFAULT_MAX_CONNS);
  set_int(L, "max_write_queue", MRPC_DEFAULT_MAX_WRITE_QUEUE);
  lua_setfield(L, -2, "limits");
  lua_pushliteral(L, MOONRPC_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
