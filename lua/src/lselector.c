/* lselector.c: the selector userdata ("moonrpc.selector") over the core's
 * mrpc_selector_t: rpcx's selectors and its group/state filter, used by the
 * Lua xclient to pick a server for each call. */
#include <stdlib.h>
#include <string.h>
#include "lbase.h"
#include "moonrpc/selector.h"

#define SELECTOR_MT "moonrpc.selector"

/* The userdata of one selector; Lua's collector frees it. */
typedef struct lselector_s {
  mrpc_selector_t *sel; /* owned; freed by __gc with mrpc_selector_free,
                         * then NULL */
} lselector_t;

static lselector_t *check_sel(lua_State *L) {
  lselector_t *ls = luaL_checkudata(L, 1, SELECTOR_MT);
  if (!ls->sel) luaL_error(L, "moonrpc: selector is freed");
  return ls;
}

/* selector_new(name, seed) -> selector; name is rpcx's ("RandomSelect",
 * "RoundRobin", "WeightedRoundRobin", "WeightedICMP", "ConsistentHash",
 * "Closest", "SelectByUser"). */
static int lmrpc_selector_new(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  lua_Integer seed = luaL_optinteger(L, 2, 0);
  int mode = mrpc_select_mode_from_name(name), r;
  lselector_t *ls;
  if (mode < 0) return luaL_argerror(L, 1, "unknown selector");
  ls = lua_newuserdatauv(L, sizeof *ls, 0);
  ls->sel = NULL;
  luaL_setmetatable(L, SELECTOR_MT);
  if ((r = mrpc_selector_new((mrpc_select_mode_t)mode, (uint64_t)seed, &ls->sel)) < 0)
    return luaL_error(L, "moonrpc: %s", mrpc_strerror(r));
  return 1;
}

/* selector:update({ {addr=, metadata=}, ... } [, group]) */
static int lmrpc_selector_update(lua_State *L) {
  lselector_t *ls = check_sel(L);
  const char *group = luaL_optstring(L, 3, NULL);
  lua_Integer i, n;
  mrpc_server_info_t *list;
  int r;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  list = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *list, 0);
  for (i = 1; i <= n; i++) {
    lua_geti(L, 2, i); /* stays on the stack: it keeps the strings alive */
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "addr");
    list[i - 1].addr = luaL_checkstring(L, -1);
    lua_getfield(L, -2, "metadata");
    list[i - 1].meta = lua_isnil(L, -1) ? "" : luaL_checkstring(L, -1);
  }
  r = mrpc_selector_update(ls->sel, list, (size_t)n, group);
  if (r < 0) return luaL_error(L, "moonrpc: selector update: %s", mrpc_strerror(r));
  return 0;
}

/* selector:select(service, method [, payload [, avoid]]) -> address |
 * nil, code, message */
static int lmrpc_selector_select(lua_State *L) {
  lselector_t *ls = check_sel(L);
  size_t len = 0;
  const char *service = luaL_checkstring(L, 2), *method = luaL_checkstring(L, 3);
  const char *payload = luaL_optlstring(L, 4, NULL, &len);
  const char *avoid = luaL_optstring(L, 5, NULL), *addr = NULL;
  int r = mrpc_selector_select(ls->sel, service, method, payload, len, avoid, &addr);
  if (r < 0) return lmrpc_push_fail(L, r);
  lua_pushstring(L, addr);
  return 1;
}

/* selector:addresses() -> the live addresses (after the group/state filter) */
static int lmrpc_selector_addresses(lua_State *L) {
  lselector_t *ls = check_sel(L);
  size_t i, n = mrpc_selector_count(ls->sel);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, mrpc_selector_address(ls->sel, i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* selector:set_rtt(address, milliseconds): WeightedICMP's measurement */
static int lmrpc_selector_set_rtt(lua_State *L) {
  lselector_t *ls = check_sel(L);
  mrpc_selector_set_rtt(ls->sel, luaL_checkstring(L, 2), luaL_checknumber(L, 3));
  return 0;
}

/* selector:set_point(latitude, longitude): Closest's reference point */
static int lmrpc_selector_set_point(lua_State *L) {
  lselector_t *ls = check_sel(L);
  mrpc_selector_set_point(ls->sel, luaL_checknumber(L, 2), luaL_checknumber(L, 3));
  return 0;
}

static int lmrpc_selector_gc(lua_State *L) {
  lselector_t *ls = luaL_checkudata(L, 1, SELECTOR_MT);
  if (ls->sel) mrpc_selector_free(ls->sel);
  ls->sel = NULL;
  return 0;
}

static const luaL_Reg methods[] = {
  {"update", lmrpc_selector_update},
  {"select", lmrpc_selector_select},
  {"addresses", lmrpc_selector_addresses},
  {"set_rtt", lmrpc_selector_set_rtt},
  {"set_point", lmrpc_selector_set_point},
  {NULL, NULL}
};

void lmrpc_selector_open(lua_State *L) {
  lmrpc_new_class(L, SELECTOR_MT, methods, lmrpc_selector_gc, NULL, NULL);
  lua_pushcfunction(L, lmrpc_selector_new);
  lua_setfield(L, -2, "selector_new");
}
