/* lmoonrpc.c: the moonrpc.core module: the per-state context, loop
 * ownership, running the loop, timers, and the helpers the other binding
 * files share. The Lua API (lua/moonrpc.lua) is built on top of this. */
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <unistd.h>
#include "lmoonrpc.h"
#include "lcodec.h"

/* ---- context --------------------------------------------------------------- */

static int ctx_gc(lua_State *L) {
  lmrpc_ctx_t *ctx = lua_touserdata(L, 1);
  struct lmrpc_pcall_s *p;
  ctx->closing = 1; /* the loop turns below must not run Lua any more */
  if (ctx->owns_loop && ctx->loop) {
    /* Let pending close callbacks run, then close the loop if it is idle. */
    int i;
    for (i = 0; i < 4; i++) uv_run(ctx->loop, UV_RUN_NOWAIT);
    uv_loop_close(ctx->loop);
  }
  ctx->loop = NULL;
  while ((p = ctx->free_calls)) {
    ctx->free_calls = *(struct lmrpc_pcall_s **)p;
    free(p);
  }
  mrpc_buf_free(&ctx->enc);
  return 0;
}

static lmrpc_ctx_t *ctx_get(lua_State *L, uv_loop_t *loop) {
  lmrpc_ctx_t *ctx;
  if (lua_getfield(L, LUA_REGISTRYINDEX, LMRPC_CTX_KEY) == LUA_TUSERDATA) {
    ctx = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return ctx;
  }
  lua_pop(L, 1);
  ctx = lua_newuserdatauv(L, sizeof *ctx, 0);
  memset(ctx, 0, sizeof *ctx);
  ctx->ref_request = ctx->ref_complete = ctx->ref_timer = ctx->ref_push = LUA_NOREF;
  ctx->ref_event = LUA_NOREF;
  lua_newtable(L);
  lua_pushcfunction(L, ctx_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, LMRPC_CTX_KEY);
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  ctx->main = ctx->L = lua_tothread(L, -1);
  lua_pop(L, 1);
  if (loop) {
    ctx->loop = loop;
  } else {
    if (uv_loop_init(&ctx->own) < 0) luaL_error(L, "moonrpc: cannot create a loop");
    ctx->loop = &ctx->own;
    ctx->owns_loop = 1;
  }
  return ctx;
}

lmrpc_ctx_t *lmrpc_ctx(lua_State *L) { return ctx_get(L, NULL); }

int lmrpc_set_loop(lua_State *L, uv_loop_t *loop) {
  int t = lua_getfield(L, LUA_REGISTRYINDEX, LMRPC_CTX_KEY);
  lua_pop(L, 1);
  if (t == LUA_TUSERDATA) return MRPC_EBUSY;
  ctx_get(L, loop);
  return 0;
}

lua_State *lmrpc_begin(lmrpc_ctx_t *ctx, int ref) {
  lua_State *L = ctx->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  return L;
}

void lmrpc_callback(lmrpc_ctx_t *ctx, lua_State *L, int nargs) {
  if (ctx->closing) {
    lua_pop(L, nargs + 1);
    return;
  }
  ctx->depth++;
  if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {
    fprintf(stderr, "moonrpc: error in callback: %s\n",
            lua_tostring(L, -1) ? lua_tostring(L, -1) : "(not a string)");
    lua_pop(L, 1);
  }
  ctx->depth--;
}

/* ---- shared helpers ----------------------------------------------------------- */

int lmrpc_check_serialize(lua_State *L, int idx) {
  static const char *const names[] = {"raw", "json", "msgpack", "none", NULL};
  static const int codes[] = {MRPC_SERIALIZE_NONE, MRPC_SERIALIZE_JSON,
                              MRPC_SERIALIZE_MSGPACK, MRPC_SERIALIZE_NONE};
  if (lua_isnoneornil(L, idx)) return MRPC_SERIALIZE_MSGPACK;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n >= 0 && n <= 15, idx, "serialize type out of range");
    return (int)n;
  }
  return codes[luaL_checkoption(L, idx, NULL, names)];
}

void lmrpc_push_meta(lua_State *L, const mrpc_frame_t *f, const char *skip) {
  size_t i, skipped = 0;
  for (i = 0; skip && i < f->meta_count; i++)
    if (strlen(skip) == f->meta[i].key_len && memcmp(skip, f->meta[i].key, f->meta[i].key_len) == 0)
      skipped++;
  if (f->meta_count == skipped) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, (int)f->meta_count);
  for (i = 0; i < f->meta_count; i++) {
    const mrpc_meta_t *m = &f->meta[i];
    if (skip && strlen(skip) == m->key_len && memcmp(skip, m->key, m->key_len) == 0)
      continue;
    lua_pushlstring(L, m->key, m->key_len);
    lua_pushlstring(L, m->val, m->val_len);
    lua_rawset(L, -3);
  }
}

int lmrpc_meta_from_table(lua_State *L, int idx, mrpc_meta_t **out) {
  int n = 0, cap = 0;
  mrpc_meta_t *m = NULL;
  idx = lua_absindex(L, idx);
  *out = NULL;
  if (lua_isnoneornil(L, idx)) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t kl, vl;
    const char *k, *v;
    if (lua_type(L, -2) != LUA_TSTRING ||
        (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
      lua_pop(L, 2);
      free(m);
      return -1;
    }
    /* Numbers are converted in place; lua_next tolerates value changes. */
    v = lua_tolstring(L, -1, &vl);
    k = lua_tolstring(L, -2, &kl);
    if (n == cap) {
      mrpc_meta_t *nm = realloc(m, (size_t)(cap = cap ? cap * 2 : 8) * sizeof *m);
      if (!nm) {
        lua_pop(L, 2);
        free(m);
        return -1;
      }
      m = nm;
    }
    m[n].key = k;
    m[n].key_len = kl;
    m[n].val = v;
    m[n].val_len = vl;
    n++;
    lua_pop(L, 1);
  }
  *out = m;
  return n;
}

int lmrpc_push_fail(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushstring(L, mrpc_err_name(err));
  lua_pushstring(L, mrpc_strerror(err));
  return 3;
}

void lmrpc_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction gc, lua_CFunction close, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L); /* not luaL_newlib: `methods` is a pointer here */
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  if (close) {
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
  }
  if (tostring) {
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
}

/* ---- loop ------------------------------------------------------------------------ */

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
  uv_stop(lmrpc_ctx(L)->loop);
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
  lua_pushboolean(L, lmrpc_ctx(L)->depth > 0);
  return 1;
}

/* loop_pointer() -> light userdata: the uv_loop_t * in use, for hosts and
 * for other libuv bindings that can share it. */
static int lmrpc_loop_pointer(lua_State *L) {
  lua_pushlightuserdata(L, lmrpc_ctx(L)->loop);
  return 1;
}

/* use_loop(lightuserdata): hand in the host's uv_loop_t * before anything
 * was created. Raises if a loop is already in use. */
static int lmrpc_loop_use(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  if (lmrpc_set_loop(L, lua_touserdata(L, 1)) < 0)
    return luaL_error(L, "moonrpc: a loop is already in use");
  return 0;
}

/* set_dispatchers(request, complete, timer, push, event): the Lua
 * functions that the C callbacks call. */
static int lmrpc_set_dispatchers(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
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

/* ---- timers --------------------------------------------------------------------- */

typedef struct ltimer_s {
  uv_timer_t t;
  lmrpc_ctx_t *ctx;
  lua_Integer id;
} ltimer_t;

static void timer_closed(uv_handle_t *h) { free(h->data); }

static void on_timer(uv_timer_t *t) {
  ltimer_t *tm = t->data;
  lmrpc_ctx_t *ctx = tm->ctx;
  lua_State *L = lmrpc_begin(ctx, ctx->ref_timer);
  lua_pushinteger(L, tm->id);
  uv_close((uv_handle_t *)&tm->t, timer_closed);
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
  uv_timer_stop(&tm->t);
  uv_close((uv_handle_t *)&tm->t, timer_closed);
  return 0;
}

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
  {"run", lmrpc_loop_run},
  {"stop", lmrpc_loop_stop},
  {"now", lmrpc_loop_now},
  {"hrtime", lmrpc_loop_hrtime},
  {"in_callback", lmrpc_loop_in_callback},
  {"loop_pointer", lmrpc_loop_pointer},
  {"use_loop", lmrpc_loop_use},
  {"set_dispatchers", lmrpc_set_dispatchers},
  {"timer_start", lmrpc_timer_start},
  {"timer_stop", lmrpc_timer_stop},
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
  lmrpc_codec_open(L);
  lmrpc_server_open(L);
  lmrpc_client_open(L);
  lmrpc_selector_open(L);
  lmrpc_registry_open_lib(L);
  lmrpc_signal_open(L);
  lmrpc_edit_open(L);
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
