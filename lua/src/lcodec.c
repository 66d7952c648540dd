/* lcodec.c: Lua values <-> rpcx payload bytes for the moonrpc Lua binding.
 * This file is the dispatcher by serialize type: the C entry points
 * lmrpc_encode/lmrpc_decode, the raw codec, and the Lua-facing functions
 * (encode, decode, bin, null). It calls down into the msgpack codec
 * (lmsgpack.c) and the JSON codec (ljson.c), which share the value helpers
 * of lvalue.c and never call back up here.
 *
 * The mapping (serialize types are rpcx's: 0 raw, 1 JSON, 3 msgpack)
 * ------------------------------------------------------------------
 * Encoding, Lua -> bytes:
 *   nil (top level), moonrpc.null   msgpack nil; JSON null
 *   boolean                         bool
 *   integer                         msgpack: the smallest width, positive
 *                                   values unsigned, as Go's
 *                                   vmihailenco/msgpack writes them (-3 is
 *                                   fd, 100000 is ce 00 01 86 a0); JSON: the
 *                                   exact decimal
 *   float                           msgpack float64 (cb); JSON: the shortest
 *                                   of %.15g/%.16g/%.17g that reads back
 *                                   equal. NaN and infinities cannot be
 *                                   written in JSON (EENCODE)
 *   string                          msgpack str (fixstr/str8/16/32); JSON
 *                                   string, escaped per RFC 8259, with bytes
 *                                   >= 0x80 copied unchanged
 *   moonrpc.bin(s)                  msgpack bin (bin8/16/32); JSON: a base64
 *                                   string, as Go writes a []byte
 *   table with keys exactly 1..n    array (n >= 1, no holes, no other keys)
 *   any other non-empty table       map. msgpack keys may be strings,
 *                                   integers, floats or booleans; JSON keys
 *                                   strings or numbers (written as strings)
 *   empty table                     empty map (msgpack 80, JSON {}): Lua
 *                                   cannot tell {} from an empty array
 *   function, thread, userdata      EENCODE, naming the path ("cannot encode
 *                                   a function value at args.x")
 *   tables nested deeper than       EDEPTH; a cycle reaches this limit too
 *   max_depth (default 64)
 *   Raw (0) accepts only a string or moonrpc.bin(s) and writes its bytes.
 *   Tables are read raw: metatables other than moonrpc.bin are ignored.
 *
 * Decoding, bytes -> Lua:
 *   nil / null                      nil at the top level; moonrpc.null
 *                                   inside arrays and maps, so that arrays
 *                                   keep their length and keys their place
 *   bool                            boolean
 *   integers of every width         integer; a uint64 above 2^63-1 becomes
 *                                   a float (rounded)
 *   float32, float64                float
 *   str, bin                        string (both)
 *   array                           sequence table 1..n
 *   map                             table; a nil key or a NaN key is EDECODE
 *   ext -1 (Go's time.Time)         float seconds since the Unix epoch
 *   any other ext                   EDECODE "msgpack ext type N is not
 *                                   supported"
 *   JSON numbers                    integer when written without '.', 'e'
 *                                   or 'E' and within int64, else float
 *   JSON strings                    string; \uXXXX escapes (surrogate pairs
 *                                   too) become UTF-8, a lone surrogate
 *                                   becomes U+FFFD as in Go
 *   JSON object keys                always strings
 *   Raw (0)                         the bytes as a string
 * Malformed, truncated input and bytes after the value are EDECODE; nesting
 * past max_depth is EDEPTH. Counts and lengths from the input are checked
 * against the bytes left before anything is allocated for them.
 *
 * moonrpc.null is a light userdata holding NULL (compare with ==).
 * moonrpc.bin(s) is the table {s} with the metatable "moonrpc.bin" from the
 * registry; tostring() of it gives s back. max_depth 0 means 64. */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "lcodec.h"
#include "lvalue.h"

#define BUF_MT "moonrpc.codec.buf"
/* The Lua-facing encode keeps its scratch buffer unless it grew past this. */
#define KEEP_BUF (64u * 1024)

/* Raw payloads: a string or bin(s), copied unchanged. */
static int raw_encode(lmrpc__enc_t *e, int idx) {
  lua_State *L = e->L;
  const char *s;
  size_t n;
  if (lua_type(L, idx) == LUA_TSTRING)
    s = lua_tolstring(L, idx, &n);
  else if (lua_type(L, idx) == LUA_TTABLE && lmrpc__is_bin(L, idx)) {
    if (!(s = lmrpc__bin_bytes(e, idx, &n)))
      return MRPC_EENCODE;
  } else
    return lmrpc__enc_fail(e, MRPC_EENCODE, "raw payloads must be strings, not %s",
                           luaL_typename(L, idx));
  if (mrpc_buf_append(e->out, s, n) != 0)
    return lmrpc__enc_fail(e, MRPC_ENOMEM, "out of memory");
  return 0;
}

/* ---- the C API -------------------------------------------------------------- */

int lmrpc_encode(lua_State *L, int idx, int serialize, mrpc_buf_t *out,
                 unsigned max_depth, char *err, size_t errlen) {
  lmrpc__enc_t e = {.L = L, .out = out, .err = err, .errlen = errlen,
                    .max_depth = max_depth ? max_depth : MRPC_DEFAULT_MAX_DEPTH,
                    .pstart = sizeof e.path};
  size_t len0 = out->len;
  int top = lua_gettop(L), rc;
  if (err && errlen)
    err[0] = '\0';
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 4))
    return lmrpc__enc_fail(&e, MRPC_ENOMEM, "Lua stack exhausted");
  switch (serialize) {
  case LMRPC_SER_MSGPACK:
    rc = lmrpc__mp_encode(&e, idx);
    break;
  case LMRPC_SER_JSON:
    rc = lmrpc__json_encode(&e, idx, 0);
    break;
  case LMRPC_SER_RAW:
    rc = raw_encode(&e, idx);
    break;
  default:
    rc = lmrpc__enc_fail(&e, MRPC_ECODEC, "unknown serialize type %d", serialize);
  }
  lua_settop(L, top);
  if (rc) {
    out->len = len0;
    /* A depth error's path is mostly the cycle repeated: leave it out. */
    if (rc != MRPC_EDEPTH && e.pstart < sizeof e.path && err && errlen) {
      const char *p = e.path + e.pstart;
      size_t plen = sizeof e.path - e.pstart, l = strlen(err);
      if (p[0] == '.' && p[1] != '.') /* "x.y", not ".x.y" */
        p++, plen--;
      if (l + 1 < errlen)
        snprintf(err + l, errlen - l, " at %.*s", (int)plen, p);
    }
  }
  return rc;
}

int lmrpc_decode(lua_State *L, int serialize, const char *p, size_t n,
                 unsigned max_depth, char *err, size_t errlen) {
  const unsigned char *u = (const unsigned char *)(p ? p : "");
  lmrpc__dec_t d = {.L = L, .start = u, .p = u, .end = u + n, .err = err, .errlen = errlen,
                    .max_depth = max_depth ? max_depth : MRPC_DEFAULT_MAX_DEPTH};
  int top = lua_gettop(L), rc;
  if (err && errlen)
    err[0] = '\0';
  if (!lua_checkstack(L, 4))
    return lmrpc__dec_fail(&d, MRPC_ENOMEM, "Lua stack exhausted");
  switch (serialize) {
  case LMRPC_SER_MSGPACK:
    rc = lmrpc__mp_decode(&d);
    break;
  case LMRPC_SER_JSON:
    rc = lmrpc__json_decode(&d);
    break;
  case LMRPC_SER_RAW:
    lua_pushlstring(L, (const char *)u, n);
    rc = 0;
    break;
  default:
    rc = lmrpc__dec_fail(&d, MRPC_ECODEC, "unknown serialize type %d", serialize);
  }
  if (rc)
    lua_settop(L, top);
  return rc;
}

/* ---- the Lua functions ------------------------------------------------------ */

/* Reads an optional serialize argument: a number or "raw"/"none"/"json"/
 * "msgpack"; absent means msgpack. A wrong type or name raises. */
static int check_serialize(lua_State *L, int arg) {
  static const char *const names[] = {"msgpack", "json", "raw", "none", NULL};
  static const int codes[] = {LMRPC_SER_MSGPACK, LMRPC_SER_JSON, LMRPC_SER_RAW, LMRPC_SER_RAW};
  lua_Integer v;
  if (lua_isnoneornil(L, arg))
    return LMRPC_SER_MSGPACK;
  if (lua_type(L, arg) == LUA_TSTRING)
    return codes[luaL_checkoption(L, arg, NULL, names)];
  v = luaL_checkinteger(L, arg);
  return v >= 0 && v <= 255 ? (int)v : -1;
}

static unsigned opt_depth(lua_State *L, int arg) {
  lua_Integer v = luaL_optinteger(L, arg, 0);
  luaL_argcheck(L, v >= 0 && v <= 1000, arg, "max_depth out of range (0..1000)");
  return (unsigned)v;
}

/* The fail triple, as elsewhere in moonrpc: nil, code name ("EDECODE"),
 * message. */
static int push_fail(lua_State *L, int rc, const char *msg) {
  luaL_pushfail(L);
  lua_pushstring(L, mrpc_err_name(rc));
  lua_pushstring(L, msg);
  return 3;
}

/* encode(value [, serialize [, max_depth]]) -> string | nil, code, msg */
static int lmrpc_codec_encode(lua_State *L) {
  mrpc_buf_t *b = lua_touserdata(L, lua_upvalueindex(1));
  int ser = check_serialize(L, 2), rc;
  unsigned depth = opt_depth(L, 3);
  char err[256];
  lua_settop(L, 1);
  b->len = 0;
  rc = lmrpc_encode(L, 1, ser, b, depth, err, sizeof err);
  if (rc == 0)
    lua_pushlstring(L, b->data, b->len);
  if (b->cap > KEEP_BUF)
    mrpc_buf_free(b);
  return rc ? push_fail(L, rc, err) : 1;
}

/* decode(string [, serialize [, max_depth]]) -> value | nil, code, msg */
static int lmrpc_codec_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int ser = check_serialize(L, 2), rc;
  unsigned depth = opt_depth(L, 3);
  char err[256];
  rc = lmrpc_decode(L, ser, s, n, depth, err, sizeof err);
  return rc ? push_fail(L, rc, err) : 1;
}

/* bin(s) -> a value that msgpack writes as bin (JSON: base64). */
static int lmrpc_codec_bin(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  luaL_setmetatable(L, LMRPC_BIN_MT);
  return 1;
}

/* tostring(bin(s)) gives s back. */
static int lmrpc_codec_bin_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_rawgeti(L, 1, 1) != LUA_TSTRING)
    lua_pushliteral(L, "moonrpc.bin(?)");
  return 1;
}

static int lmrpc_codec_buf_gc(lua_State *L) {
  mrpc_buf_free(luaL_checkudata(L, 1, BUF_MT));
  return 0;
}

void lmrpc_codec_open(lua_State *L) {
  int t = lua_absindex(L, -1);
  mrpc_buf_t *b;
  luaL_checkstack(L, 4, NULL);
  if (luaL_newmetatable(L, LMRPC_BIN_MT)) {
    lua_pushcfunction(L, lmrpc_codec_bin_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_pop(L, 1);
  /* encode's scratch buffer, an upvalue freed by __gc. */
  b = lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  if (luaL_newmetatable(L, BUF_MT)) {
    lua_pushcfunction(L, lmrpc_codec_buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, lmrpc_codec_encode, 1);
  lua_setfield(L, t, "encode");
  lua_pushcfunction(L, lmrpc_codec_decode);
  lua_setfield(L, t, "decode");
  lua_pushcfunction(L, lmrpc_codec_bin);
  lua_setfield(L, t, "bin");
  lmrpc_push_null(L);
  lua_setfield(L, t, "null");
}
