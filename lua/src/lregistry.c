/* lregistry.c: the registry userdata ("moonrpc.registry") over the core's
 * mrpc_registry_t (moonrpc://, etcd, Redis). One-shot operations complete through the
 * completion dispatcher with (id, code, message, value); a watch reports
 * through the event dispatcher with (id, list) every time the list
 * changes. */
#include <stdlib.h>
#include <string.h>
#include "lbase.h"

#define REGISTRY_MT "moonrpc.registry"

/* The userdata of one registry; Lua's collector frees it. */
typedef struct lregistry_s {
  mrpc_registry_t *reg; /* owned; released by close() or __gc with
                         * mrpc_registry_close, then NULL */
  lmrpc_ctx_t *ctx;     /* borrowed: the state's context */
} lregistry_t;

/* The udata of one operation or one watch, malloc'ed by new_op. An
 * operation's is freed by complete() when it ends (or by started() when it
 * could not start); a watch's by the watch userdata's stop() or __gc. */
typedef struct lop_s {
  lmrpc_ctx_t *ctx;     /* borrowed: the state's context */
  lua_Integer id;
  mrpc_watch_t *watch;  /* a watch's core handle, NULL for an operation;
                         * released by stop() with mrpc_registry_unwatch,
                         * or with the registry by mrpc_registry_close */
} lop_t;

static lregistry_t *check_reg(lua_State *L) {
  lregistry_t *lr = luaL_checkudata(L, 1, REGISTRY_MT);
  if (!lr->reg) luaL_error(L, "moonrpc: registry is closed");
  return lr;
}

static void push_list(lua_State *L, const mrpc_reg_entry_t *list, size_t n) {
  size_t i;
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, list[i].addr);
    lua_setfield(L, -2, "addr");
    lua_pushstring(L, list[i].meta);
    lua_setfield(L, -2, "metadata");
    lua_pushstring(L, list[i].service);
    lua_setfield(L, -2, "service");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Completes operation `op` (and frees it): the completion dispatcher gets
 * (id, code, message) on failure, else (id, nil, nil [, list]). */
static void complete(lop_t *op, int status, const mrpc_reg_entry_t *list, size_t n,
                     int with_list) {
  lmrpc_ctx_t *ctx = op->ctx;
  lua_State *L = lmrpc_begin(ctx, ctx->ref_complete);
  int nargs = 3;
  lua_pushinteger(L, op->id);
  free(op);
  if (status < 0) {
    lua_pushstring(L, mrpc_err_name(status));
    lua_pushstring(L, mrpc_strerror(status));
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
    if (with_list) {
      push_list(L, list, n);
      nargs = 4;
    }
  }
  lmrpc_callback(ctx, L, nargs);
}

static void on_done(int status, void *udata) { complete(udata, status, NULL, 0, 0); }

static void on_list(int status, const mrpc_reg_entry_t *list, size_t n, void *udata) {
  complete(udata, status, list, n, 1);
}

static void on_watch(int status, const mrpc_reg_entry_t *list, size_t n, void *udata) {
  lop_t *op = udata;
  lmrpc_ctx_t *ctx = op->ctx;
  lua_State *L;
  if (status < 0 || ctx->ref_event == LUA_NOREF) return;
  L = lmrpc_begin(ctx, ctx->ref_event);
  lua_pushinteger(L, op->id);
  push_list(L, list, n);
  lmrpc_callback(ctx, L, 2);
}

/* registry_open(url) -> registry | nil, code, message */
static int lmrpc_registry_open(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  const char *url = luaL_checkstring(L, 1);
  lregistry_t *lr = lua_newuserdatauv(L, sizeof *lr, 0);
  int r;
  lr->reg = NULL;
  lr->ctx = ctx;
  luaL_setmetatable(L, REGISTRY_MT);
  if ((r = mrpc_registry_open(ctx->loop, url, &lr->reg)) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, mrpc_err_name(r));
    lua_pushfstring(L, "%s: %s", mrpc_strerror(r), url);
    return 3;
  }
  return 1;
}

/* Allocates an operation's udata after every argument was checked. */
static lop_t *new_op(lua_State *L, lregistry_t *lr, lua_Integer id) {
  lop_t *op = malloc(sizeof *op);
  if (!op) luaL_error(L, "moonrpc: out of memory");
  op->ctx = lr->ctx;
  op->id = id;
  op->watch = NULL;
  return op;
}

static int started(lua_State *L, int r, lop_t *op) {
  if (r < 0) {
    free(op);
    return lmrpc_push_fail(L, r);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* registry:register(service, addr, meta, ttl_s, id) */
static int lmrpc_registry_register(lua_State *L) {
  lregistry_t *lr = check_reg(L);
  const char *svc = luaL_checkstring(L, 2), *addr = luaL_checkstring(L, 3);
  const char *meta = luaL_optstring(L, 4, "");
  lua_Integer ttl = luaL_checkinteger(L, 5), id = luaL_checkinteger(L, 6);
  lop_t *op;
  luaL_argcheck(L, ttl > 0 && ttl < 86400 * 365, 5, "ttl out of range");
  op = new_op(L, lr, id);
  return started(L, mrpc_registry_register(lr->reg, svc, addr, meta, (unsigned)ttl, on_done, op), op);
}

/* registry:update(service, addr, meta, id) */
static int lmrpc_registry_update(lua_State *L) {
  lregistry_t *lr = check_reg(L);
  const char *svc = luaL_checkstring(L, 2), *addr = luaL_checkstring(L, 3);
  const char *meta = luaL_checkstring(L, 4);
  lop_t *op = new_op(L, lr, luaL_checkinteger(L, 5));
  return started(L, mrpc_registry_update(lr->reg, svc, addr, meta, on_done, op), op);
}

/* registry:unregister(service, addr, id) */
static int lmrpc_registry_unregister(lua_State *L) {
  lregistry_t *lr = check_reg(L);
  const char *svc = luaL_checkstring(L, 2), *addr = luaL_checkstring(L, 3);
  lop_t *op = new_op(L, lr, luaL_checkinteger(L, 4));
  return started(L, mrpc_registry_unregister(lr->reg, svc, addr, on_done, op), op);
}

/* registry:list(service, id) */
static int lmrpc_registry_list(lua_State *L) {
  lregistry_t *lr = check_reg(L);
  const char *svc = luaL_checkstring(L, 2);
  lop_t *op = new_op(L, lr, luaL_checkinteger(L, 3));
  return started(L, mrpc_registry_list(lr->reg, svc, on_list, op), op);
}

#define WATCH_MT "moonrpc.registry.watch"

/* registry:watch(service, id) -> watch: the event dispatcher gets (id,
 * list) now and after every change, until watch:stop(). */
static int lmrpc_registry_watch(lua_State *L) {
  lregistry_t *lr = check_reg(L);
  const char *svc = luaL_checkstring(L, 2);
  lop_t **ud, *op = new_op(L, lr, luaL_checkinteger(L, 3));
  int r;
  ud = lua_newuserdatauv(L, sizeof *ud, 1);
  *ud = NULL;
  luaL_setmetatable(L, WATCH_MT);
  lua_pushvalue(L, 1); /* the watch keeps its registry alive */
  lua_setiuservalue(L, -2, 1);
  if ((r = mrpc_registry_watch(lr->reg, svc, on_watch, op, &op->watch)) < 0) {
    free(op);
    return lmrpc_push_fail(L, r);
  }
  *ud = op;
  return 1;
}

static int lmrpc_watch_stop(lua_State *L) {
  lop_t **ud = luaL_checkudata(L, 1, WATCH_MT);
  lregistry_t *lr;
  if (!*ud) return 0;
  lua_getiuservalue(L, 1, 1);
  lr = lua_touserdata(L, -1);
  if (lr && lr->reg) mrpc_registry_unwatch((*ud)->watch);
  free(*ud);
  *ud = NULL;
  return 0;
}

/* The close is done: the goodbyes went out (or timed out) and the core
 * registry is freed. `udata` is the operation to complete, if any. */
static void closed(int status, void *udata) {
  (void)status;
  if (udata) complete(udata, 0, NULL, 0, 0);
}

/* registry:close([id]) -> true when the completion dispatcher will get
 * `id` once the close is done (false when there was nothing to close or no
 * id was given). Also __gc and __close, without an id. */
static int lmrpc_registry_close(lua_State *L) {
  lregistry_t *lr = luaL_checkudata(L, 1, REGISTRY_MT);
  lop_t *op = NULL;
  if (lr->reg) {
    if (lua_isinteger(L, 2)) op = new_op(L, lr, lua_tointeger(L, 2));
    /* Watches end with the registry: their udata is freed by their own
     * userdata's stop/__gc, which sees lr->reg == NULL and skips unwatch. */
    mrpc_registry_close(lr->reg, closed, op);
    lr->reg = NULL;
  }
  lua_pushboolean(L, op != NULL);
  return 1;
}

static int lmrpc_registry_base(lua_State *L) {
  lua_pushstring(L, mrpc_registry_base(check_reg(L)->reg));
  return 1;
}

static const luaL_Reg methods[] = {
  {"register", lmrpc_registry_register},
  {"update", lmrpc_registry_update},
  {"unregister", lmrpc_registry_unregister},
  {"list", lmrpc_registry_list},
  {"watch", lmrpc_registry_watch},
  {"base", lmrpc_registry_base},
  {"close", lmrpc_registry_close},
  {NULL, NULL}
};

static const luaL_Reg watch_methods[] = {
  {"stop", lmrpc_watch_stop},
  {NULL, NULL}
};

void lmrpc_registry_open_lib(lua_State *L) {
  lmrpc_new_class(L, REGISTRY_MT, methods, lmrpc_registry_close, lmrpc_registry_close, NULL);
  lmrpc_new_class(L, WATCH_MT, watch_methods, lmrpc_watch_stop, lmrpc_watch_stop, NULL);
  lua_pushcfunction(L, lmrpc_registry_open);
  lua_setfield(L, -2, "registry_open");
}
