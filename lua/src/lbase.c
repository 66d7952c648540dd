/* lbase.c: what every part of the moonrpc Lua binding shares (lbase.h):
 * the per-state context with the loop it uses, the protected calls into
 * the Lua dispatchers, and the conversions the classes have in common
 * (serialize types, metadata, limits, failures, metatables). It calls no
 * other file of the binding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lbase.h"

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

/* The context is made on first use; its loop only when something needs
 * one (`want_loop`), so that require "moonrpc", which sets the dispatchers,
 * leaves room for lmrpc_set_loop to hand in the host's loop afterwards. */
static lmrpc_ctx_t *ctx_get(lua_State *L, int want_loop) {
  lmrpc_ctx_t *ctx;
  if (lua_getfield(L, LUA_REGISTRYINDEX, LMRPC_CTX_KEY) == LUA_TUSERDATA) {
    ctx = lua_touserdata(L, -1);
    lua_pop(L, 1);
  } else {
    lua_pop(L, 1);
    ctx = lua_newuserdatauv(L, sizeof *ctx, 0);
    memset(ctx, 0, sizeof *ctx);
    ctx->ref_request = ctx->ref_complete = ctx->ref_timer = ctx->ref_push = LUA_NOREF;
    ctx->ref_event = LUA_NOREF;
    ctx->log_level = 2; /* "info", lserver.c's LOG_INFO */
    lua_newtable(L);
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, LMRPC_CTX_KEY);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ctx->main = ctx->L = lua_tothread(L, -1);
    lua_pop(L, 1);
  }
  if (want_loop && !ctx->loop && !ctx->closing) {
    if (uv_loop_init(&ctx->own) < 0) luaL_error(L, "moonrpc: cannot create a loop");
    ctx->loop = &ctx->own;
    ctx->owns_loop = 1;
  }
  return ctx;
}

lmrpc_ctx_t *lmrpc_ctx(lua_State *L) { return ctx_get(L, 1); }

lmrpc_ctx_t *lmrpc_ctx_noloop(lua_State *L) { return ctx_get(L, 0); }

int lmrpc_set_loop(lua_State *L, uv_loop_t *loop) {
  lmrpc_ctx_t *ctx = ctx_get(L, 0);
  if (ctx->loop || ctx->closing) return MRPC_EBUSY;
  ctx->loop = loop;
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

/* ---- conversions the classes share ------------------------------------------ */

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

static uint32_t opt_u32(lua_State *L, int t, const char *k) {
  lua_Integer v;
  if (lua_getfield(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  v = luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  if (v < 1 || v > 0x7fffffff) luaL_error(L, "moonrpc: option %s out of range", k);
  return (uint32_t)v;
}

void lmrpc_read_limits(lua_State *L, int t, mrpc_limits_t *l) {
  memset(l, 0, sizeof *l);
  if (lua_type(L, t) != LUA_TTABLE) return;
  l->max_frame = opt_u32(L, t, "max_frame");
  l->max_meta_pairs = opt_u32(L, t, "max_meta_pairs");
  l->max_meta_bytes = opt_u32(L, t, "max_meta_bytes");
  l->max_decompressed = opt_u32(L, t, "max_decompressed");
  l->max_depth = opt_u32(L, t, "max_depth");
  l->max_conns = opt_u32(L, t, "max_conns");
  l->max_write_queue = opt_u32(L, t, "max_write_queue");
}
