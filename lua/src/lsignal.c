/* lsignal.c: POSIX signals on the loop ("moonrpc.signal"), so that a
 * long-running command can stop gracefully on SIGINT or SIGTERM.
 *
 * signal_start(name, id) watches a signal with a uv_signal_t; each delivery
 * calls the Lua event dispatcher with (id, name) from the loop, never from
 * the signal handler itself (libuv turns the signal into an ordinary
 * callback). The handle does not keep the loop alive (uv_unref): a process
 * whose only remaining handle is a signal watch ends its run. The watch
 * lives until stop() or the userdata's __gc; its memory is freed in the
 * close callback.
 *
 * interrupt_guard(thread) is for a REPL: while Lua code in `thread` runs
 * outside the loop (a CPU-bound line such as `while true do end`), libuv
 * cannot deliver SIGINT, as its handler only wakes the loop. The guard
 * installs a handler in front of libuv's: a SIGINT that comes while the
 * loop is not running sets a hook on `thread` (lua_sethook may be called
 * from a signal handler, as lua.c does) that raises "interrupted" at the
 * next instruction; one that comes while the loop runs goes on to libuv's
 * handler, and so to the uv_signal watchers, as before. interrupt_guard()
 * removes the guard. One guard per process. */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include "lbase.h"
#include "lloop.h"

#define SIGNAL_MT "moonrpc.signal"

/* One signal watch, malloc'ed by signal_start and freed by sig_closed, the
 * close callback of the handle that stop() or __gc closes. */
typedef struct lsig_s {
  uv_signal_t h;
  lmrpc_ctx_t *ctx;  /* borrowed: the state's context */
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

/* ---- the REPL's interrupt guard ---------------------------------------------- */

static lua_State *volatile guard_L;  /* borrowed: the guarded thread */
static lmrpc_ctx_t *guard_ctx;       /* borrowed: its state's context */
static struct sigaction guard_prev;
static int guard_on;

/* Raises "interrupted" (no position: the same text wherever it fires), but
 * not inside a callback from the loop, whose own protected call would
 * swallow it: the hook stays set until the callback has returned. */
static void guard_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  if (guard_ctx && guard_ctx->depth > 0) return;
  lua_sethook(L, NULL, 0, 0);
  lua_pushliteral(L, "interrupted");
  lua_error(L);
}

static void guard_handler(int sig, siginfo_t *info, void *uctx) {
  lua_State *L = guard_L;
  if (L && !lmrpc_in_run) {
    lua_sethook(L, guard_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    return;
  }
  if (guard_prev.sa_flags & SA_SIGINFO) {
    if (guard_prev.sa_sigaction) guard_prev.sa_sigaction(sig, info, uctx);
  } else if (guard_prev.sa_handler != SIG_IGN && guard_prev.sa_handler != SIG_DFL) {
    guard_prev.sa_handler(sig);
  } else if (guard_prev.sa_handler == SIG_DFL) {
    signal(sig, SIG_DFL); /* nothing else wants it: what SIGINT would do */
    raise(sig);
  }
}

/* interrupt_guard([thread]): arms the guard for `thread` (a coroutine or
 * the main thread), or disarms it without one. The hook may fire at any
 * call or instruction of `thread` after a SIGINT, the disarming call
 * included: arm, run and disarm inside one protected call, then clear the
 * hook (debug.sethook(thread)). Disarming restores the action SIGINT had
 * when the guard was armed. */
static int lmrpc_interrupt_guard(lua_State *L) {
  struct sigaction sa;
  if (lua_isnoneornil(L, 1)) {
    if (guard_on) {
      guard_L = NULL;
      sigaction(SIGINT, &guard_prev, NULL);
      guard_on = 0;
    }
    return 0;
  }
  luaL_checktype(L, 1, LUA_TTHREAD);
  guard_ctx = lmrpc_ctx(L);
  guard_L = lua_tothread(L, 1);
  if (!guard_on) {
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = guard_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &guard_prev) < 0) {
      guard_L = NULL;
      return luaL_error(L, "moonrpc: sigaction: %s", strerror(errno));
    }
    guard_on = 1;
  }
  return 0;
}

void lmrpc_signal_open(lua_State *L) {
  lmrpc_new_class(L, SIGNAL_MT, methods, lmrpc_signal_stop, lmrpc_signal_stop, NULL);
  lua_pushcfunction(L, lmrpc_signal_start);
  lua_setfield(L, -2, "signal_start");
  lua_pushcfunction(L, lmrpc_interrupt_guard);
  lua_setfield(L, -2, "interrupt_guard");
}
