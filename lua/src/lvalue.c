/* lvalue.c: Lua values as the payload codecs see them (lvalue.h): the
 * moonrpc.null sentinel, moonrpc.bin values, the array/map/bin shape of a
 * table, and the failure messages with the key path that led to a value
 * that cannot be encoded. Shared by ljson.c and lmsgpack.c; calls only Lua
 * and the core's error names. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "lvalue.h"

/* ---- null and bin --------------------------------------------------------- */

void lmrpc_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

int lmrpc__is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

int lmrpc__is_bin(lua_State *L, int idx) {
  int r;
  if (!lua_getmetatable(L, idx))
    return 0;
  lua_getfield(L, LUA_REGISTRYINDEX, LMRPC_BIN_MT);
  r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

const char *lmrpc__bin_bytes(lmrpc__enc_t *e, int idx, size_t *n) {
  const char *s = NULL;
  if (lua_rawgeti(e->L, idx, 1) == LUA_TSTRING)
    s = lua_tolstring(e->L, -1, n);
  lua_pop(e->L, 1); /* the table still holds the string */
  if (!s)
    lmrpc__enc_fail(e, MRPC_EENCODE, "a moonrpc.bin value must hold a string");
  return s;
}

int lmrpc__table_kind(lua_State *L, int idx, size_t *n) {
  size_t count = 0;
  lua_Integer max = 0;
  int seq = 1;
  if (lmrpc__is_bin(L, idx))
    return LMRPC__BIN;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (seq && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1)
      max = lua_tointeger(L, -1) > max ? lua_tointeger(L, -1) : max;
    else
      seq = 0;
  }
  *n = count;
  /* Distinct integer keys, all >= 1, as many as the largest: exactly 1..n. */
  return seq && count > 0 && (size_t)max == count ? LMRPC__ARRAY : LMRPC__MAP;
}

static void vfail(char *err, size_t errlen, const char *fmt, va_list ap) {
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
}

int lmrpc__enc_fail(lmrpc__enc_t *e, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(e->err, e->errlen, fmt, ap);
  va_end(ap);
  return code;
}

int lmrpc__dec_fail(lmrpc__dec_t *d, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(d->err, d->errlen, fmt, ap);
  va_end(ap);
  return code;
}

int lmrpc__enc_bad_type(lmrpc__enc_t *e, int idx, const char *what) {
  return lmrpc__enc_fail(e, MRPC_EENCODE, "cannot encode a %s %s",
                         luaL_typename(e->L, idx), what);
}

/* Puts s[0..n) in front of the path. When the buffer is full the outer part
 * of the path is replaced by "...". */
static void path_prepend(lmrpc__enc_t *e, const char *s, size_t n) {
  if (sizeof e->path - e->pstart >= 3 && memcmp(e->path + e->pstart, "...", 3) == 0)
    return; /* already truncated */
  if (n + 3 > e->pstart) {
    s = "...";
    n = 3;
  }
  e->pstart -= n;
  memcpy(e->path + e->pstart, s, n);
}

static int is_ident(const char *s, size_t n) {
  static const char ok[] = "_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  return n > 0 && n <= 40 && !(s[0] >= '0' && s[0] <= '9') && strspn(s, ok) == n;
}

void lmrpc__enc_path_key(lmrpc__enc_t *e, int kidx) {
  lua_State *L = e->L;
  char seg[64];
  int n;
  size_t len;
  const char *s;
  switch (lua_type(L, kidx)) {
  case LUA_TSTRING:
    s = lua_tolstring(L, kidx, &len);
    if (is_ident(s, len))
      n = snprintf(seg, sizeof seg, ".%s", s);
    else
      n = snprintf(seg, sizeof seg, "[\"%.*s\"]", len > 40 ? 40 : (int)len, s);
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, kidx)) {
      lmrpc__enc_path_index(e, lua_tointeger(L, kidx));
      return;
    }
    n = snprintf(seg, sizeof seg, "[%.14g]", (double)lua_tonumber(L, kidx));
    break;
  case LUA_TBOOLEAN:
    n = snprintf(seg, sizeof seg, "[%s]", lua_toboolean(L, kidx) ? "true" : "false");
    break;
  default:
    n = snprintf(seg, sizeof seg, "[<%s>]", luaL_typename(L, kidx));
  }
  path_prepend(e, seg, (size_t)n < sizeof seg ? (size_t)n : sizeof seg - 1);
}

void lmrpc__enc_path_index(lmrpc__enc_t *e, lua_Integer i) {
  char seg[32];
  int n = snprintf(seg, sizeof seg, "[" LUA_INTEGER_FMT "]", i);
  path_prepend(e, seg, (size_t)n);
}
