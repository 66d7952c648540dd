/* lserver.c: the server userdata ("moonrpc.server") and request replies.
 *
 * Each registered Lua method becomes a core handler whose udata is an
 * lmethod_t holding a registry ref to the Lua function. A request decodes
 * its arguments in C, then calls the Lua request dispatcher with
 * (handler, req, args); the dispatcher runs the handler in a pooled
 * coroutine and answers through reply()/reply_error(). The req pointer goes
 * to Lua as a light userdata: the Lua side uses it only until it answers. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <sys/time.h>
#include "lbase.h"
#include "lcodec.h"

#define SERVER_MT "moonrpc.server"

/* One registered method, the udata of its core handler; calloc'ed by
 * server:add and freed by server_close. */
typedef struct lmethod_s {
  struct lserver_s *ls;    /* borrowed: the server that lists it */
  int ref;                 /* registry ref to the handler function;
                            * released by server_close */
  struct lmethod_s *next;
} lmethod_t;

/* The userdata of one server; Lua's collector frees it. */
typedef struct lserver_s {
  mrpc_server_t *srv;      /* owned; released by server_close (close() or
                            * __gc) with mrpc_server_close, then NULL */
  lmrpc_ctx_t *ctx;        /* borrowed: the state's context */
  lmethod_t *methods;      /* owned list; each freed by server_close */
  int auth_ref;            /* registry ref to the Lua auth wrapper, or
                            * LUA_NOREF; released by set_auth when replaced
                            * and by server_close */
  int done_id;             /* completion id for shutdown, 0 if none */
  mrpc_regsrv_t *regsrv;   /* the embedded registry it serves, or NULL;
                            * owned, released by server_close with
                            * mrpc_regsrv_close before the server */
} lserver_t;

static lserver_t *check_server(lua_State *L) {
  lserver_t *ls = luaL_checkudata(L, 1, SERVER_MT);
  if (!ls->srv) luaL_error(L, "moonrpc: server is closed");
  return ls;
}

static void on_request(mrpc_req_t *req, void *udata) {
  lmethod_t *m = udata;
  lmrpc_ctx_t *ctx = m->ls->ctx;
  const mrpc_frame_t *f = mrpc_req_frame(req);
  lua_State *L = lmrpc_begin(ctx, ctx->ref_request);
  char err[200], msg[260];
  int ser = mrpc_frame_serialize(f), r = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, m->ref);
  lua_pushlightuserdata(L, req);
  if (f->payload_len == 0 && ser != MRPC_SERIALIZE_NONE) lua_pushnil(L);
  else r = lmrpc_decode(L, ser, f->payload, f->payload_len, mrpc_req_limits(req)->max_depth, err, sizeof err);
  if (r < 0) {
    lua_pop(L, 3);
    snprintf(msg, sizeof msg, "moonrpc: cannot decode arguments: %s", err);
    mrpc_req_error(req, msg, NULL, 0, NULL, 0);
    return;
  }
  lmrpc_callback(ctx, L, 3);
}

static int on_auth(mrpc_req_t *req, const char *token, size_t len, void *udata,
                   char *err, size_t errlen) {
  lserver_t *ls = udata;
  lua_State *L = lmrpc_begin(ls->ctx, ls->auth_ref);
  int ok;
  lua_pushlightuserdata(L, req);
  if (token) lua_pushlstring(L, token, len);
  else lua_pushnil(L);
  ls->ctx->depth++;
  if (lua_pcall(L, 2, 2, 0) != LUA_OK) {
    snprintf(err, errlen, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "auth failed");
    lua_pop(L, 1);
    ls->ctx->depth--;
    return 1;
  }
  ls->ctx->depth--;
  ok = lua_toboolean(L, -2);
  if (!ok && lua_type(L, -1) == LUA_TSTRING) snprintf(err, errlen, "%s", lua_tostring(L, -1));
  lua_pop(L, 2);
  return ok ? 0 : 1;
}

/* Log levels, as moonrpc.log numbers them (lua/moonrpc/log.lua). The
 * core's own levels are 0 info and 1 warning. */
enum { LOG_DEBUG = 1, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
static const char *const log_names[] = { "?", "debug", "info", "warn", "error" };

/* Writes one log line to stderr: local time with milliseconds, level,
 * message ("2025-01-02 15:04:05.123 [warn] moonrpc: ..."). One fprintf, so
 * lines of several processes sharing stderr do not interleave. */
static void log_line(int level, const char *msg) {
  struct timeval tv;
  struct tm tm;
  char when[32];
  time_t secs;
  gettimeofday(&tv, NULL);
  secs = tv.tv_sec;
  localtime_r(&secs, &tm);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
  if (level < LOG_DEBUG || level > LOG_ERROR) level = LOG_ERROR;
  fprintf(stderr, "%s.%03d [%s] moonrpc: %s\n", when, (int)(tv.tv_usec / 1000),
          log_names[level], msg);
}

/* The core's sink (udata: the state's context): messages below
 * moonrpc.log.level are dropped. They go to stderr, not to a Lua sink: the
 * core may log from inside a call that Lua made (a reply that fails to
 * write), where no Lua state is free to run the sink on. */
static void log_sink(void *udata, int level, const char *msg) {
  lmrpc_ctx_t *ctx = udata;
  int lvl = level <= 0 ? LOG_INFO : LOG_WARN;
  if (lvl < ctx->log_level) return;
  log_line(lvl, msg);
}

/* log_write(level, msg): moonrpc.log's default sink, the same line format
 * as the core's. */
static int lmrpc_log_write(lua_State *L) {
  int level = (int)luaL_checkinteger(L, 1);
  log_line(level, luaL_checkstring(L, 2));
  return 0;
}

/* log_level(level): what moonrpc.log.level = NAME tells the C sink. */
static int lmrpc_log_level(lua_State *L) {
  lua_Integer level = luaL_checkinteger(L, 1);
  luaL_argcheck(L, level >= LOG_DEBUG && level <= LOG_OFF, 1, "log level out of range");
  lmrpc_ctx_noloop(L)->log_level = (int)level;
  return 0;
}

/* server_new([opts]) -> server. opts: the named limits, reuseport,
 * idle_timeout (seconds; absent or 0: off; negative raises). */
static int lmrpc_server_new(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  mrpc_server_opts_t o;
  lserver_t *ls;
  int r;
  memset(&o, 0, sizeof o);
  lmrpc_read_limits(L, 1, &o.limits);
  if (lua_istable(L, 1)) {
    lua_getfield(L, 1, "reuseport");
    o.reuseport = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "idle_timeout") != LUA_TNIL) {
      lua_Number t = luaL_checknumber(L, -1);
      if (t < 0) return luaL_error(L, "moonrpc: option idle_timeout must not be negative");
      o.idle_timeout_ms = (uint64_t)(t * 1000 + 0.5);
      if (t > 0 && o.idle_timeout_ms == 0) o.idle_timeout_ms = 1;
    }
    lua_pop(L, 1);
  }
  o.log = log_sink;
  o.log_udata = ctx;
  ls = lua_newuserdatauv(L, sizeof *ls, 0);
  memset(ls, 0, sizeof *ls);
  ls->ctx = ctx;
  ls->auth_ref = LUA_NOREF;
  luaL_setmetatable(L, SERVER_MT);
  if ((r = mrpc_server_new(ctx->loop, &o, &ls->srv)) < 0)
    return luaL_error(L, "moonrpc: %s", mrpc_strerror(r));
  return 1;
}

/* server:add(service, method, fn) */
static int lmrpc_server_add(lua_State *L) {
  lserver_t *ls = check_server(L);
  const char *svc = luaL_checkstring(L, 2), *meth = luaL_checkstring(L, 3);
  lmethod_t *m;
  int r;
  luaL_checktype(L, 4, LUA_TFUNCTION);
  if (!(m = calloc(1, sizeof *m))) return luaL_error(L, "moonrpc: out of memory");
  lua_pushvalue(L, 4);
  m->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  m->ls = ls;
  m->next = ls->methods;
  ls->methods = m;
  if ((r = mrpc_server_register(ls->srv, svc, meth, on_request, m)) < 0)
    return luaL_error(L, "moonrpc: cannot register %s.%s: %s", svc, meth, mrpc_strerror(r));
  return 0;
}

static int lmrpc_server_remove(lua_State *L) {
  lserver_t *ls = check_server(L);
  lua_pushboolean(L, mrpc_server_unregister(ls->srv, luaL_checkstring(L, 2)) == 0);
  return 1;
}

/* server:listen(network, address) -> address | nil, code, message */
static int lmrpc_server_listen(lua_State *L) {
  lserver_t *ls = check_server(L);
  char addr[320];
  int r = mrpc_server_listen(ls->srv, luaL_checkstring(L, 2), luaL_checkstring(L, 3));
  int i = 0;
  if (r < 0) return lmrpc_push_fail(L, r);
  while (mrpc_server_address(ls->srv, i + 1, addr, sizeof addr) == 0) i++;
  mrpc_server_address(ls->srv, i, addr, sizeof addr);
  lua_pushstring(L, addr);
  return 1;
}

/* server:addresses() -> { "tcp@127.0.0.1:8972", ... } */
static int lmrpc_server_addresses(lua_State *L) {
  lserver_t *ls = check_server(L);
  char addr[320];
  int i;
  lua_newtable(L);
  for (i = 0; mrpc_server_address(ls->srv, i, addr, sizeof addr) == 0; i++) {
    lua_pushstring(L, addr);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int lmrpc_server_stats(lua_State *L) {
  lserver_t *ls = check_server(L);
  lua_pushinteger(L, (lua_Integer)mrpc_server_conn_count(ls->srv));
  lua_pushinteger(L, (lua_Integer)mrpc_server_inflight(ls->srv));
  return 2;
}

static void on_shutdown(mrpc_server_t *s, void *udata) {
  lserver_t *ls = udata;
  lmrpc_ctx_t *ctx = ls->ctx;
  lua_State *L;
  if (!ls->done_id) return;
  L = lmrpc_begin(ctx, ctx->ref_complete);
  lua_pushinteger(L, ls->done_id);
  ls->done_id = 0;
  lmrpc_callback(ctx, L, 1);
}

/* server:shutdown(timeout_ms, id): completion `id` fires when drained. */
static int lmrpc_server_shutdown(lua_State *L) {
  lserver_t *ls = check_server(L);
  lua_Number ms = luaL_checknumber(L, 2);
  int id = (int)luaL_checkinteger(L, 3), r;
  r = mrpc_server_shutdown(ls->srv, ms > 0 ? (uint64_t)ms : 0, on_shutdown, ls);
  if (r < 0) return lmrpc_push_fail(L, r);
  ls->done_id = id; /* the core never calls back from inside shutdown */
  lua_pushboolean(L, 1);
  return 1;
}

static void server_close(lua_State *L, lserver_t *ls, int from_gc) {
  lmethod_t *m;
  if (!ls->srv) return;
  if (ls->regsrv) mrpc_regsrv_close(ls->regsrv, NULL, NULL); /* before its server */
  ls->regsrv = NULL;
  mrpc_server_close(ls->srv, NULL, NULL);
  ls->srv = NULL;
  if (ls->done_id && !from_gc) /* a shutdown in progress ends here */
    on_shutdown(NULL, ls);
  ls->done_id = 0;
  while ((m = ls->methods)) {
    ls->methods = m->next;
    luaL_unref(L, LUA_REGISTRYINDEX, m->ref);
    free(m);
  }
  luaL_unref(L, LUA_REGISTRYINDEX, ls->auth_ref);
  ls->auth_ref = LUA_NOREF;
}

static int lmrpc_server_close(lua_State *L) {
  server_close(L, luaL_checkudata(L, 1, SERVER_MT), 0);
  return 0;
}

static int lmrpc_server_gc(lua_State *L) {
  server_close(L, luaL_checkudata(L, 1, SERVER_MT), 1);
  return 0;
}

static int lmrpc_server_tostring(lua_State *L) {
  lserver_t *ls = luaL_checkudata(L, 1, SERVER_MT);
  lua_pushfstring(L, "moonrpc.server (%s%p)", ls->srv ? "" : "closed, ", (void *)ls);
  return 1;
}

/* server:set_auth(wrapper): installs the auth hook; wrapper(req, token)
 * returns true to accept, or false/nil and a message. */
static int lmrpc_server_auth(lua_State *L) {
  lserver_t *ls = check_server(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, ls->auth_ref);
  lua_pushvalue(L, 2);
  ls->auth_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  mrpc_server_set_auth(ls->srv, on_auth, ls);
  return 0;
}

/* ---- replies ------------------------------------------------------------------- */

static mrpc_req_t *check_req(lua_State *L, int idx) {
  mrpc_req_t *r = lua_touserdata(L, idx);
  luaL_argcheck(L, r != NULL && lua_islightuserdata(L, idx), idx, "request expected");
  return r;
}

/* Encodes the value at `vidx` in the request's serialize type into the
 * context's buffer. Returns 0 or fails with the message in err. */
static int encode_value(lua_State *L, lmrpc_ctx_t *ctx, mrpc_req_t *req, int vidx,
                        char *err, size_t errlen) {
  /* The core server outlives its requests, so its limits are safe to read
   * even when the Lua server object is gone. */
  ctx->enc.len = 0;
  return lmrpc_encode(L, vidx, mrpc_req_serialize(req), &ctx->enc,
                      mrpc_req_limits(req)->max_depth, err, errlen);
}

/* reply(req, value, meta) -> true | nil, message
 * On an encoding failure the caller gets an error reply instead. */
static int lmrpc_reply(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  mrpc_req_t *req = check_req(L, 1);
  mrpc_meta_t *meta = NULL;
  char err[200], msg[260];
  int n = 0, r;
  if (!lua_isnoneornil(L, 3) && (n = lmrpc_meta_from_table(L, 3, &meta)) < 0) {
    mrpc_req_error(req, "moonrpc: reply metadata must map strings to strings", NULL, 0, NULL, 0);
    return luaL_error(L, "moonrpc: reply metadata must map strings to strings");
  }
  if ((r = encode_value(L, ctx, req, 2, err, sizeof err)) < 0) {
    free(meta);
    snprintf(msg, sizeof msg, "moonrpc: cannot encode reply: %s", err);
    mrpc_req_error(req, msg, NULL, 0, NULL, 0);
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
  }
  mrpc_req_reply(req, ctx->enc.data, ctx->enc.len, meta, (size_t)n);
  free(meta);
  lua_pushboolean(L, 1);
  return 1;
}

/* reply_error(req, message [, value [, meta]]): status 1 with
 * __rpcx_error__; `value`, when not nil, is sent as the payload too. */
static int lmrpc_reply_error(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  mrpc_req_t *req = check_req(L, 1);
  const char *msg = luaL_optstring(L, 2, "error");
  mrpc_meta_t *meta = NULL;
  char err[200];
  int n = 0, has = 0;
  if (!lua_isnoneornil(L, 4) && (n = lmrpc_meta_from_table(L, 4, &meta)) < 0) n = 0;
  if (!lua_isnoneornil(L, 3) && encode_value(L, ctx, req, 3, err, sizeof err) == 0) has = 1;
  mrpc_req_error(req, msg, has ? ctx->enc.data : NULL, has ? ctx->enc.len : 0, meta, (size_t)n);
  free(meta);
  return 0;
}

static int lmrpc_req_drop(lua_State *L) {
  mrpc_req_drop(check_req(L, 1));
  return 0;
}

/* req_info(req) -> service, method, timeout_ms, deadline_ms, serialize,
 * oneway */
static int lmrpc_req_info(lua_State *L) {
  mrpc_req_t *req = check_req(L, 1);
  const mrpc_frame_t *f = mrpc_req_frame(req);
  lua_pushlstring(L, f->path, f->path_len);
  lua_pushlstring(L, f->method, f->method_len);
  lua_pushinteger(L, (lua_Integer)mrpc_req_timeout(req));
  lua_pushinteger(L, (lua_Integer)mrpc_req_deadline(req));
  lua_pushinteger(L, mrpc_req_serialize(req));
  lua_pushboolean(L, mrpc_req_oneway(req));
  return 6;
}

/* req_remote(req) -> "ip:port" or the socket path, or nil */
static int lmrpc_req_remote(lua_State *L) {
  char remote[300];
  if (mrpc_req_remote(check_req(L, 1), remote, sizeof remote) == 0) lua_pushstring(L, remote);
  else lua_pushnil(L);
  return 1;
}

static int lmrpc_req_meta(lua_State *L) {
  mrpc_req_t *req = check_req(L, 1);
  lmrpc_push_meta(L, mrpc_req_frame(req), NULL);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
  }
  return 1;
}

/* server:add_registry(max_entries, max_watches, max_ttl): serves the
 * embedded registry (the "Registry" service) on this server. */
static int lmrpc_server_add_registry(lua_State *L) {
  lserver_t *ls = check_server(L);
  mrpc_regsrv_opts_t o;
  int r;
  if (ls->regsrv) return luaL_error(L, "moonrpc: this server already serves a registry");
  memset(&o, 0, sizeof o);
  o.max_entries = (unsigned)luaL_optinteger(L, 2, 0);
  o.max_watches = (unsigned)luaL_optinteger(L, 3, 0);
  o.max_ttl_s = (unsigned)luaL_optinteger(L, 4, 0);
  r = mrpc_regsrv_new(ls->ctx->loop, ls->srv, &o, &ls->regsrv);
  if (r < 0) return lmrpc_push_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* server:registry_stats(): instances, watches (nil without a registry). */
static int lmrpc_server_registry_stats(lua_State *L) {
  lserver_t *ls = check_server(L);
  if (!ls->regsrv) return 0;
  lua_pushinteger(L, (lua_Integer)mrpc_regsrv_count(ls->regsrv));
  lua_pushinteger(L, (lua_Integer)mrpc_regsrv_watchers(ls->regsrv));
  return 2;
}

/* server:set_metadata(service, meta): what reflection reports. */
static int lmrpc_server_set_metadata(lua_State *L) {
  lserver_t *ls = check_server(L);
  int r = mrpc_server_set_metadata(ls->srv, luaL_checkstring(L, 2), luaL_optstring(L, 3, ""));
  if (r < 0) return lmrpc_push_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg server_methods[] = {
  {"set_metadata", lmrpc_server_set_metadata},
  {"add_registry", lmrpc_server_add_registry},
  {"registry_stats", lmrpc_server_registry_stats},
  {"add", lmrpc_server_add},
  {"remove", lmrpc_server_remove},
  {"listen", lmrpc_server_listen},
  {"addresses", lmrpc_server_addresses},
  {"set_auth", lmrpc_server_auth},
  {"stats", lmrpc_server_stats},
  {"shutdown", lmrpc_server_shutdown},
  {"close", lmrpc_server_close},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"server_new", lmrpc_server_new},
  {"reply", lmrpc_reply},
  {"reply_error", lmrpc_reply_error},
  {"req_drop", lmrpc_req_drop},
  {"req_info", lmrpc_req_info},
  {"req_remote", lmrpc_req_remote},
  {"req_meta", lmrpc_req_meta},
  {"log_write", lmrpc_log_write},
  {"log_level", lmrpc_log_level},
  {NULL, NULL}
};

void lmrpc_server_open(lua_State *L) {
  lmrpc_new_class(L, SERVER_MT, server_methods, lmrpc_server_gc, lmrpc_server_close,
                  lmrpc_server_tostring);
  luaL_setfuncs(L, funcs, 0);
}
