/* lclient.c: the client connection userdata ("moonrpc.client").
 *
 * A call encodes its arguments in C, sends them through the core client and
 * names itself with an integer id chosen by the Lua side. Its completion
 * calls the Lua completion dispatcher with (id, code, message, value, meta):
 * code is nil on success, "EREMOTE" for an error reply (value then holds
 * the reply payload if any), or the local error's name (ETIMEDOUT ...). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "lbase.h"
#include "lcodec.h"

#define CLIENT_MT "moonrpc.client"

/* The userdata of one client; Lua's collector frees it. */
typedef struct lclient_s {
  mrpc_client_t *cli; /* owned; released by client_close (close() or __gc)
                       * with mrpc_client_close, then NULL */
  lmrpc_ctx_t *ctx;   /* borrowed: the state's context */
  lua_Integer id;     /* names the client in push callbacks */
  int quiet;          /* closing from __gc: call no Lua */
  int closing;        /* inside client_close */
  unsigned max_depth; /* payload nesting limit of this client */
} lclient_t;

/* One pending call's udata, malloc'ed by pcall_get and put back in the
 * context's pool by on_done (or by the call that failed to start); the
 * context's __gc (lbase.c) frees the pool. `next` must stay the first
 * member: ctx_gc frees the pool through it. */
typedef struct lmrpc_pcall_s {
  struct lmrpc_pcall_s *next; /* the pool's link while unused */
  lclient_t *lc;              /* borrowed: the client stays until on_done */
  lua_Integer id;
} pcall_t;

static lclient_t *check_client(lua_State *L) {
  lclient_t *lc = luaL_checkudata(L, 1, CLIENT_MT);
  if (!lc->cli) luaL_error(L, "moonrpc: client is closed");
  return lc;
}

static pcall_t *pcall_get(lmrpc_ctx_t *ctx) {
  pcall_t *p = ctx->free_calls;
  if (p) ctx->free_calls = p->next;
  else p = malloc(sizeof *p);
  return p;
}

static void pcall_put(lmrpc_ctx_t *ctx, pcall_t *p) {
  p->next = ctx->free_calls;
  ctx->free_calls = p;
}

static void on_done(int status, const mrpc_frame_t *f, void *udata) {
  pcall_t *p = udata;
  lclient_t *lc = p->lc;
  lmrpc_ctx_t *ctx = lc->ctx;
  lua_Integer id = p->id;
  lua_State *L;
  const char *etext;
  size_t elen;
  char err[200];
  int ser;
  pcall_put(ctx, p);
  if (lc->quiet) return;
  L = lmrpc_begin(ctx, ctx->ref_complete);
  lua_pushinteger(L, id);
  if (status < 0) {
    lua_pushstring(L, mrpc_err_name(status));
    lua_pushstring(L, mrpc_strerror(status));
    lmrpc_callback(ctx, L, 3);
    return;
  }
  etext = mrpc_frame_error(f, &elen);
  if (etext) {
    lua_pushliteral(L, "EREMOTE");
    lua_pushlstring(L, etext, elen);
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  ser = mrpc_frame_serialize(f);
  if (f->payload_len == 0 && ser != MRPC_SERIALIZE_NONE) {
    lua_pushnil(L);
  } else if (lmrpc_decode(L, ser, f->payload, f->payload_len, lc->max_depth, err,
                          sizeof err) < 0) {
    if (!etext) { /* a remote error wins over its undecodable payload */
      lua_pop(L, 2);
      lua_pushliteral(L, "EDECODE");
      lua_pushfstring(L, "cannot decode reply: %s", err);
    }
    lua_pushnil(L);
  }
  lmrpc_push_meta(L, f, MRPC_META_ERROR);
  lmrpc_callback(ctx, L, 5);
}

static void on_push(mrpc_client_t *c, const mrpc_frame_t *f, void *udata) {
  lclient_t *lc = udata;
  lmrpc_ctx_t *ctx = lc->ctx;
  lua_State *L;
  char err[200];
  if (lc->quiet || ctx->ref_push == LUA_NOREF) return;
  L = lmrpc_begin(ctx, ctx->ref_push);
  lua_pushinteger(L, lc->id);
  lua_pushlstring(L, f->path, f->path_len);
  lua_pushlstring(L, f->method, f->method_len);
  if (lmrpc_decode(L, mrpc_frame_serialize(f), f->payload, f->payload_len,
                   lc->max_depth, err, sizeof err) < 0)
    lua_pushlstring(L, f->payload, f->payload_len);
  lmrpc_push_meta(L, f, NULL);
  lmrpc_callback(ctx, L, 5);
}

static uint64_t opt_ms(lua_State *L, int t, const char *k) {
  lua_Number v;
  if (lua_getfield(L, t, k) == LUA_TNIL) {
    lua_pop(L, 1);
    return 0;
  }
  v = luaL_checknumber(L, -1);
  lua_pop(L, 1);
  if (v < 0) luaL_error(L, "moonrpc: option %s must not be negative", k);
  return (uint64_t)(v * 1000 + 0.5);
}

/* client_new(address, id [, opts]) -> client | nil, code, message
 * opts: connect_timeout, heartbeat, heartbeat_timeout (seconds) and the
 * named limits. */
static int lmrpc_client_new(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  const char *addr = luaL_checkstring(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  mrpc_client_opts_t o;
  lclient_t *lc;
  int r;
  memset(&o, 0, sizeof o);
  if (lua_type(L, 3) == LUA_TTABLE) {
    lmrpc_read_limits(L, 3, &o.limits);
    o.connect_timeout_ms = opt_ms(L, 3, "connect_timeout");
    o.heartbeat_interval_ms = opt_ms(L, 3, "heartbeat");
    o.heartbeat_timeout_ms = opt_ms(L, 3, "heartbeat_timeout");
  }
  lc = lua_newuserdatauv(L, sizeof *lc, 0);
  memset(lc, 0, sizeof *lc);
  lc->ctx = ctx;
  lc->id = id;
  lc->max_depth = o.limits.max_depth ? o.limits.max_depth : MRPC_DEFAULT_MAX_DEPTH;
  luaL_setmetatable(L, CLIENT_MT);
  o.on_push = on_push;
  o.push_udata = lc;
  if ((r = mrpc_client_new(ctx->loop, addr, &o, &lc->cli)) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, mrpc_err_name(r));
    lua_pushfstring(L, "%s: %s", mrpc_strerror(r), addr);
    return 3;
  }
  return 1;
}

/* client:call(service, method, args, serialize, meta, timeout_s, gzip,
 *             oneway, id) -> seq | nil, code, message
 * The completion dispatcher gets `id` exactly once, later (never for a
 * oneway call, nor when this returns nil). Arguments that cannot be
 * encoded fail here with EENCODE. */
static int lmrpc_client_call(lua_State *L) {
  lclient_t *lc = check_client(L);
  lmrpc_ctx_t *ctx = lc->ctx;
  mrpc_call_args_t a;
  mrpc_meta_t *meta = NULL;
  pcall_t *p = NULL;
  char err[200];
  uint64_t seq = 0;
  lua_Integer id = 0;
  int n = 0, r;
  memset(&a, 0, sizeof a);
  a.service = luaL_checkstring(L, 2);
  a.method = luaL_checkstring(L, 3);
  a.serialize = (uint8_t)lmrpc_check_serialize(L, 5);
  /* Every check that may raise comes before anything is allocated. */
  if (!lua_isnoneornil(L, 6)) luaL_checktype(L, 6, LUA_TTABLE);
  if (!lua_isnoneornil(L, 7)) {
    lua_Number t = luaL_checknumber(L, 7);
    luaL_argcheck(L, t > 0, 7, "timeout must be positive");
    a.timeout_ms = (uint64_t)(t * 1000 + 0.5);
    if (!a.timeout_ms) a.timeout_ms = 1;
  }
  a.gzip = lua_toboolean(L, 8);
  a.oneway = lua_toboolean(L, 9);
  if (!a.oneway) id = luaL_checkinteger(L, 10);
  if (!lua_isnoneornil(L, 6) && (n = lmrpc_meta_from_table(L, 6, &meta)) < 0)
    return luaL_argerror(L, 6, "metadata must map strings to strings");
  a.meta = meta;
  a.meta_count = (size_t)n;
  ctx->enc.len = 0;
  if ((r = lmrpc_encode(L, 4, a.serialize, &ctx->enc, lc->max_depth, err, sizeof err)) < 0) {
    free(meta);
    lua_pushnil(L);
    lua_pushstring(L, mrpc_err_name(r));
    lua_pushfstring(L, "cannot encode arguments: %s", err);
    return 3;
  }
  a.payload = ctx->enc.data;
  a.payload_len = ctx->enc.len;
  if (!a.oneway) {
    if (!(p = pcall_get(ctx))) {
      free(meta);
      return luaL_error(L, "moonrpc: out of memory");
    }
    p->lc = lc;
    p->id = id;
  }
  r = mrpc_client_call(lc->cli, &a, on_done, p, &seq);
  free(meta);
  if (r < 0) {
    if (p) pcall_put(ctx, p);
    return lmrpc_push_fail(L, r);
  }
  /* The core's seq is the key for cancel. */
  lua_pushinteger(L, (lua_Integer)seq);
  return 1;
}

/* client:cancel(seq) -> true when the call was still pending; its
 * completion then runs now with ECANCELED. On a closed client it returns
 * false: closing ended every pending call already, and a call that ends
 * may well cancel its other requests after a completion closed the client
 * (a coroutine that the reply resumed called xc:close()). */
static int lmrpc_client_cancel(lua_State *L) {
  lclient_t *lc = luaL_checkudata(L, 1, CLIENT_MT);
  uint64_t seq = (uint64_t)luaL_checkinteger(L, 2);
  lua_pushboolean(L, lc->cli && mrpc_client_cancel(lc->cli, seq) == 0);
  return 1;
}

/* client:ping(timeout_s, id): a heartbeat; completes like a call, with the
 * round trip in microseconds as the value. */
static int lmrpc_client_ping(lua_State *L) {
  lclient_t *lc = check_client(L);
  lua_Number t = luaL_optnumber(L, 2, 5);
  lua_Integer id = luaL_checkinteger(L, 3);
  pcall_t *p = pcall_get(lc->ctx);
  int r;
  if (!p) return luaL_error(L, "moonrpc: out of memory");
  p->lc = lc;
  p->id = id;
  r = mrpc_client_ping(lc->cli, (uint64_t)(t * 1000), on_done, p);
  if (r < 0) {
    pcall_put(lc->ctx, p);
    return lmrpc_push_fail(L, r);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int lmrpc_client_info(lua_State *L) {
  lclient_t *lc = check_client(L);
  lua_pushboolean(L, mrpc_client_connected(lc->cli));
  lua_pushinteger(L, (lua_Integer)mrpc_client_pending(lc->cli));
  lua_pushinteger(L, (lua_Integer)mrpc_client_rtt(lc->cli));
  lua_pushstring(L, mrpc_client_address(lc->cli));
  return 4;
}

static int lmrpc_client_connect(lua_State *L) {
  lclient_t *lc = check_client(L);
  int r = mrpc_client_connect(lc->cli);
  if (r < 0) {
    return lmrpc_push_fail(L, r);
  }
  lua_pushboolean(L, 1);
  return 1;
}

static void client_close(lclient_t *lc, int quiet) {
  mrpc_client_t *c = lc->cli;
  if (!c || lc->closing) return;
  lc->closing = 1;
  lc->quiet = quiet;
  /* Pending calls end with ECLOSED now; their callbacks may still use this
   * object (a cancel finds nothing, a new call gets ECLOSED), so it is
   * marked closed only afterwards. */
  mrpc_client_close(c, NULL, NULL);
  lc->cli = NULL;
}

static int lmrpc_client_close(lua_State *L) {
  client_close(luaL_checkudata(L, 1, CLIENT_MT), 0);
  return 0;
}

static int lmrpc_client_gc(lua_State *L) {
  client_close(luaL_checkudata(L, 1, CLIENT_MT), 1);
  return 0;
}

static int lmrpc_client_tostring(lua_State *L) {
  lclient_t *lc = luaL_checkudata(L, 1, CLIENT_MT);
  if (lc->cli) lua_pushfstring(L, "moonrpc.client (%s)", mrpc_client_address(lc->cli));
  else lua_pushliteral(L, "moonrpc.client (closed)");
  return 1;
}

static const luaL_Reg methods[] = {
  {"call", lmrpc_client_call},
  {"ping", lmrpc_client_ping},
  {"cancel", lmrpc_client_cancel},
  {"info", lmrpc_client_info},
  {"connect", lmrpc_client_connect},
  {"close", lmrpc_client_close},
  {NULL, NULL}
};

void lmrpc_client_open(lua_State *L) {
  lmrpc_new_class(L, CLIENT_MT, methods, lmrpc_client_gc, lmrpc_client_close,
                  lmrpc_client_tostring);
  lua_pushcfunction(L, lmrpc_client_new);
  lua_setfield(L, -2, "client_new");
}
