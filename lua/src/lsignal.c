/* lsignal.c: POSIX signals on the loop ("moonrpc.signal"), so that a
 * long-running command can stop gracefully on SIGINT or SIGTERM.
 *
 * signal_start(name, id) watches a signal with a uv_signal_t; each delivery
 * calls the Lua event dispatcher with (id, name) from the loop, never from
 * the signal handler itself (libuv turns the signal into an ordinary
 * callback). The handle does not keep the loop alive (uv_unref): a process
 * whose only remaining handle is a signal watch ends its run. The watch
 * lives until stop() or the userdata's __gc; its memory is freed in the
 * close callback. */
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include "lmoonrpc.h"

#define SIGNAL_MT "moonrpc.signal"

typedef struct lsig_s {
  uv_signal_t h;
  lmrpc_ctx_t *ctx;
  lua_Integer id;
  const char *name; /* static: one of `names` below */
} lsig_t;

static const char *const names[] = {"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT",
                                    "SIGUSR1", "SIGUSR2", NULL};
static const int numbers[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static void sig_closed(uv_handle_t *h) { free(h->data); }

static void on_signal(uv_signal_t *h, int signum) {
  lsig_t *s = h->data;
  lmrpc_ctx_t *ctx = s->ctx;
  lua_State *L;
  (void)signum;
  if (ctx->ref_event == LUA_NOREF) return;
  L = lmrpc_begin(ctx, ctx->ref_event);
  lua_pushinteger(L, s->id);
  lua_pushstring(L, s->name);
  lmrpc_callback(ctx, L, 2);
}

/* signal_start(name, id) -> watch | nil, code, message. `name` is one of
 * "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2". */
static int lmrpc_signal_start(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  int which = luaL_checkoption(L, 1, NULL, names), r;
  lua_Integer id = luaL_checkinteger(L, 2);
  lsig_t **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  lsig_t *s;
  *ud = NULL;
  luaL_setmetatable(L, SIGNAL_MT);
  if (!(s = malloc(sizeof *s))) return luaL_error(L, "moonrpc: out of memory");
  s->ctx = ctx;
  s->id = id;
  s->name = names[which];
  uv_signal_init(ctx->loop, &s->h);
  s->h.data = s;
  if ((r = uv_signal_start(&s->h, on_signal, numbers[which])) < 0) {
    uv_close((uv_handle_t *)&s->h, sig_closed);
    return lmrpc_push_fail(L, r);
  }
  uv_unref((uv_handle_t *)&s->h);
  *ud = s;
  return 1;
}

static int lmrpc_signal_stop(lua_State *L) {
  lsig_t **ud = luaL_checkudata(L, 1, SIGNAL_MT);
  lsig_t *s = *ud;
  *ud = NULL;
  /* After lua_close has closed the loop there is nothing left to stop. */
  if (s && s->ctx->loop) uv_close((uv_handle_t *)&s->h, sig_closed);
  return 0;
}

static const luaL_Reg methods[] = {
  {"stop", lmrpc_signal_stop},
  {NULL, NULL}
};

void lmrpc_signal_open(lua_State *L) {
  lmrpc_new_class(L, SIGNAL_MT, methods, lmrpc_signal_stop, lmrpc_signal_stop, NULL);
  lua_pushcfunction(L, lmrpc_signal_start);
  lua_setfield(L, -2, "signal_start");
}
