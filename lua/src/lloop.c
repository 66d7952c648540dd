/* lloop.c: the loop as Lua sees it (lloop.h): run/stop, the loop's clock,
 * handing in the host's loop (luv's among them), the dispatchers the C callbacks call, and
 * one-shot timers. It owns lmrpc_in_run, the "inside uv_run" flag that
 * run() keeps. Calls only lbase.c's context and libuv. */
#include <stdlib.h>
#if defined(__linux__) || defined(__APPLE__)
#include <dlfcn.h>
#endif
#include "lbase.h"
#include "lloop.h"

/* ---- running the loop ------------------------------------------------------ */

/* Nonzero while run() is inside uv_run, in any state of the process: the
 * REPL's SIGINT guard (lsignal.c) reads it from its signal handler to tell
 * whether libuv can deliver the signal. Only run() writes it. */
volatile sig_atomic_t lmrpc_in_run;

/* run([mode]) runs the loop: "default" until stop() or nothing is left,
 * "once" for one turn (blocking for I/O), "nowait" without blocking.
 * Returns true while handles or requests are still active. */
static int lmrpc_loop_run(lua_State *L) {
  static const char *const modes[] = {"default", "once", "nowait", NULL};
  static const uv_run_mode m[] = {UV_RUN_DEFAULT, UV_RUN_ONCE, UV_RUN_NOWAIT};
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  int mode = luaL_checkoption(L, 1, "default", modes), r;
  lua_State *saved = ctx->L;
  if (ctx->depth > 0)
    return luaL_error(L, "moonrpc: the loop cannot be run from inside one of "
                         "its callbacks; wait from a coroutine instead");
  ctx->L = L;
  lmrpc_in_run++;
  r = uv_run(ctx->loop, m[mode]);
  lmrpc_in_run--;
  ctx->L = saved;
  lua_pushboolean(L, r != 0);
  return 1;
}

static int lmrpc_loop_stop(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx_noloop(L);
  if (ctx->loop) uv_stop(ctx->loop);
  return 0;
}

/* now() -> the loop's time in ms, refreshed first: a script may have
 * spent a while outside the loop (blocking, or a REPL waiting for input),
 * and deadlines counted from the cached time would expire early. */
static int lmrpc_loop_now(lua_State *L) {
  uv_loop_t *loop = lmrpc_ctx(L)->loop;
  uv_update_time(loop);
  lua_pushinteger(L, (lua_Integer)uv_now(loop));
  return 1;
}

static int lmrpc_loop_hrtime(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_hrtime());
  return 1;
}

static int lmrpc_loop_in_callback(lua_State *L) {
  lua_pushboolean(L, lmrpc_ctx_noloop(L)->depth > 0);
  return 1;
}

/* loop_pointer() -> light userdata: the uv_loop_t * in use, for hosts and
 * for other libuv bindings that can share it. */
static int lmrpc_loop_pointer(lua_State *L) {
  lua_pushlightuserdata(L, lmrpc_ctx(L)->loop);
  return 1;
}

static void close_timers(lmrpc_ctx_t *ctx);

/* A borrowed loop outlives our part of lua_close: its owner tears it down
 * after us (luv's loop finalizer uv_closes every handle still open with
 * its own close callback, which takes handle->data for one of its own).
 * So a guard, made when the loop is handed in and therefore finalized
 * before the owner's loop (Lua finalizes in reverse order of creation),
 * closes the timers no Lua object owns and stops further calls into Lua.
 * The classes close their own handles in their __gc, which runs earlier
 * still, since they are made after the loop is handed in. */
static int guard_gc(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx_noloop(L);
  close_timers(ctx);
  ctx->closing = 1;
  return 0;
}

/* use_loop(lightuserdata): hand in the host's uv_loop_t * before anything
 * was created. Raises if a loop is already in use. */
static int lmrpc_loop_use(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  if (lmrpc_set_loop(L, lua_touserdata(L, 1)) < 0)
    return luaL_error(L, "moonrpc: use_loop must come before moonrpc creates "
                         "anything (a server, a client, a timer, run()): it "
                         "already has a loop");
  lua_newuserdatauv(L, 1, 0);
  lua_newtable(L);
  lua_pushcfunction(L, guard_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "moonrpc.loop_guard");
  return 0;
}

/* luv_loop(uv) -> lightuserdata | nil, message: the uv_loop_t * of luv, the
 * module table `uv` = require "luv", for use_loop.
 *
 * How: luv keeps its context in the Lua registry under "luv_context", a
 * full userdata whose struct, luv_ctx_t, luv.h declares with `uv_loop_t
 * *loop` as its first member (luv 1.30 on); luv_loop(L) in luv's C API
 * returns just that. We read it from the registry rather than call
 * luv_loop: require loads luv.so without RTLD_GLOBAL, so its symbols are
 * not there for us to bind to, and linking against Debian's liblua5.4-luv.so
 * would make moonrpc need luv everywhere. The registry key and the first
 * member are luv's public contract; nothing else of the struct is used.
 *
 * The loop is only usable if luv runs on the same libuv as we do: a luv
 * built with its own static copy (luarocks' default) has a loop whose
 * internals our libuv must not touch. uv.version() tells luv's libuv
 * version; and the loop's internal wakeup handle (wq_async, set up by the
 * uv_loop_init of luv's libuv) names the library its callback lives in,
 * which must be the one our uv_loop_init lives in. */
static int lmrpc_loop_luv(lua_State *L) {
  uv_loop_t *loop;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getfield(L, LUA_REGISTRYINDEX, "luv_context") != LUA_TUSERDATA ||
      lua_rawlen(L, -1) < sizeof(uv_loop_t *) ||
      !(loop = *(uv_loop_t **)lua_touserdata(L, -1))) {
    lua_pushnil(L);
    lua_pushstring(L, "luv's loop not found (is `uv` require \"luv\", luv 1.30 or later?)");
    return 2;
  }
  if (lua_getfield(L, 1, "version") == LUA_TFUNCTION) {
    lua_call(L, 0, 1);
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) != (lua_Integer)uv_version()) {
      lua_pushnil(L);
      lua_pushfstring(L, "luv runs on libuv %d.%d.%d and moonrpc on %s: both must "
                         "use the same shared libuv",
                      (int)(lua_tointeger(L, -2) >> 16), (int)((lua_tointeger(L, -2) >> 8) & 0xff),
                      (int)(lua_tointeger(L, -2) & 0xff), uv_version_string());
      return 2;
    }
  }
#if defined(__linux__) || defined(__APPLE__)
  {
    Dl_info theirs, ours;
    if (dladdr((void *)loop->wq_async.async_cb, &theirs) &&
        dladdr((void *)uv_loop_init, &ours) && theirs.dli_fbase != ours.dli_fbase) {
      lua_pushnil(L);
      lua_pushfstring(L, "luv carries its own copy of libuv (in %s); moonrpc can share "
                         "its loop only when luv links the shared libuv (Debian's "
                         "lua-luv does; luarocks: WITH_SHARED_LIBUV=ON)",
                      theirs.dli_fname ? theirs.dli_fname : "?");
      return 2;
    }
  }
#endif
  lua_pushlightuserdata(L, loop);
  return 1;
}

/* set_dispatchers(request, complete, timer, push, event): the Lua
 * functions that the C callbacks call. */
static int lmrpc_set_dispatchers(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx_noloop(L);
  int *refs[5];
  int i;
  refs[0] = &ctx->ref_request;
  refs[1] = &ctx->ref_complete;
  refs[2] = &ctx->ref_timer;
  refs[3] = &ctx->ref_push;
  refs[4] = &ctx->ref_event;
  for (i = 0; i < 5; i++) {
    luaL_checktype(L, i + 1, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
    lua_pushvalue(L, i + 1);
    *refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}

/* ---- one-shot timers -------------------------------------------------------- */

/* One timer, malloc'ed by timer_start and freed by timer_closed, the close
 * callback, after it fired or was stopped. */
typedef struct ltimer_s {
  uv_timer_t t;
  lmrpc_ctx_t *ctx;  /* borrowed: the context outlives its loop's handles */
  lua_Integer id;
  struct ltimer_s *next, *prev; /* in ctx->timers until closed */
} ltimer_t;

static void timer_closed(uv_handle_t *h) { free(h->data); }

/* Closes the timer and takes it off ctx->timers; it is freed once closed. */
static void timer_close(ltimer_t *tm) {
  if (tm->prev) tm->prev->next = tm->next;
  else tm->ctx->timers = tm->next;
  if (tm->next) tm->next->prev = tm->prev;
  uv_timer_stop(&tm->t);
  uv_close((uv_handle_t *)&tm->t, timer_closed);
}

static void close_timers(lmrpc_ctx_t *ctx) {
  while (ctx->timers) timer_close(ctx->timers);
}

static void on_timer(uv_timer_t *t) {
  ltimer_t *tm = t->data;
  lmrpc_ctx_t *ctx = tm->ctx;
  lua_State *L = lmrpc_begin(ctx, ctx->ref_timer);
  lua_pushinteger(L, tm->id);
  timer_close(tm);
  lmrpc_callback(ctx, L, 1);
}

/* timer_start(ms, id [, weak]) -> handle: calls the timer dispatcher with
 * id once, after ms milliseconds. A weak timer does not keep the loop
 * alive (uv_unref). The handle is valid until the timer fires or is
 * stopped; the Lua side never uses it after that. */
static int lmrpc_timer_start(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  lua_Number ms = luaL_checknumber(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  ltimer_t *tm = malloc(sizeof *tm);
  if (!tm) return luaL_error(L, "moonrpc: out of memory");
  tm->ctx = ctx;
  tm->id = id;
  tm->prev = NULL;
  tm->next = ctx->timers;
  if (tm->next) tm->next->prev = tm;
  ctx->timers = tm;
  uv_update_time(ctx->loop); /* count from now, not from the last loop turn */
  uv_timer_init(ctx->loop, &tm->t);
  tm->t.data = tm;
  uv_timer_start(&tm->t, on_timer, ms > 0 ? (uint64_t)(ms + 0.5) : 0, 0);
  if (lua_toboolean(L, 3)) uv_unref((uv_handle_t *)&tm->t);
  lua_pushlightuserdata(L, tm);
  return 1;
}

static int lmrpc_timer_stop(lua_State *L) {
  ltimer_t *tm = lua_touserdata(L, 1);
  luaL_argcheck(L, tm != NULL, 1, "timer handle expected");
  timer_close(tm);
  return 0;
}

static const luaL_Reg funcs[] = {
  {"run", lmrpc_loop_run},
  {"stop", lmrpc_loop_stop},
  {"now", lmrpc_loop_now},
  {"hrtime", lmrpc_loop_hrtime},
  {"in_callback", lmrpc_loop_in_callback},
  {"loop_pointer", lmrpc_loop_pointer},
  {"use_loop", lmrpc_loop_use},
  {"luv_loop", lmrpc_loop_luv},
  {"set_dispatchers", lmrpc_set_dispatchers},
  {"timer_start", lmrpc_timer_start},
  {"timer_stop", lmrpc_timer_stop},
  {NULL, NULL}
};

void lmrpc_loop_open(lua_State *L) { luaL_setfuncs(L, funcs, 0); }
