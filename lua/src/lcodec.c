/* lcodec.c: Lua values <-> rpcx payload bytes for the moonrpc Lua binding.
 * This file holds the shared helpers, the msgpack and raw codecs and the
 * Lua-facing functions; JSON lives in ljson.c.
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
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <msgpack.h>

#include "lcodec.h"

#define BIN_MT "moonrpc.bin"
#define BUF_MT "moonrpc.codec.buf"
/* The Lua-facing encode keeps its scratch buffer unless it grew past this. */
#define KEEP_BUF (64u * 1024)

/* ---- shared helpers ------------------------------------------------------- */

void lmrpc_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

int lmrpc__is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* Nonzero if the table at idx has the moonrpc.bin metatable. Uses two slots. */
static int is_bin(lua_State *L, int idx) {
  int r;
  if (!lua_getmetatable(L, idx))
    return 0;
  lua_getfield(L, LUA_REGISTRYINDEX, BIN_MT);
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
  if (is_bin(L, idx))
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

/* ---- msgpack encoding ----------------------------------------------------- */

typedef struct mpenc_s {
  lmrpc__enc_t *e;
  msgpack_packer pk;
} mpenc_t;

/* msgpack-c's write callback: appends to the mrpc_buf_t. 0 or MRPC_ENOMEM. */
static int buf_write(void *data, const char *p, size_t n) {
  return mrpc_buf_append((mrpc_buf_t *)data, p, n);
}

#define PK(m, call)                                                           \
  do {                                                                        \
    if ((call) != 0)                                                          \
      return lmrpc__enc_fail((m)->e, MRPC_ENOMEM, "out of memory");           \
  } while (0)

static int mp_encode(mpenc_t *m, int idx, unsigned depth);

static int mp_table(mpenc_t *m, int idx, unsigned depth) {
  lua_State *L = m->e->L;
  size_t n, i;
  int rc, kind;
  if (depth >= m->e->max_depth)
    return lmrpc__enc_fail(m->e, MRPC_EDEPTH, "table nesting deeper than max_depth %u (or a cycle)",
                           m->e->max_depth);
  if (!lua_checkstack(L, 4))
    return lmrpc__enc_fail(m->e, MRPC_ENOMEM, "Lua stack exhausted");
  kind = lmrpc__table_kind(L, idx, &n);
  if (kind == LMRPC__BIN) {
    const char *s = lmrpc__bin_bytes(m->e, idx, &n);
    if (!s)
      return MRPC_EENCODE;
    PK(m, msgpack_pack_bin(&m->pk, n));
    PK(m, msgpack_pack_bin_body(&m->pk, s, n));
    return 0;
  }
  if (kind == LMRPC__ARRAY) {
    PK(m, msgpack_pack_array(&m->pk, n));
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i);
      rc = mp_encode(m, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc) {
        lmrpc__enc_path_index(m->e, (lua_Integer)i);
        return rc;
      }
    }
    return 0;
  }
  PK(m, msgpack_pack_map(&m->pk, n));
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L), kt = lua_type(L, top - 1);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN)
      rc = lmrpc__enc_bad_type(m->e, top - 1, "as a map key");
    else if ((rc = mp_encode(m, top - 1, depth)) == 0 &&
             (rc = mp_encode(m, top, depth + 1)) != 0)
      lmrpc__enc_path_key(m->e, top - 1);
    if (rc) {
      lua_pop(L, 2);
      return rc;
    }
    lua_pop(L, 1);
  }
  return 0;
}

/* Writes the value at absolute index idx, which sits `depth` tables deep. */
static int mp_encode(mpenc_t *m, int idx, unsigned depth) {
  lua_State *L = m->e->L;
  size_t n;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    PK(m, msgpack_pack_nil(&m->pk));
    return 0;
  case LUA_TBOOLEAN:
    PK(m, lua_toboolean(L, idx) ? msgpack_pack_true(&m->pk) : msgpack_pack_false(&m->pk));
    return 0;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      PK(m, msgpack_pack_int64(&m->pk, (int64_t)lua_tointeger(L, idx)));
    else
      PK(m, msgpack_pack_double(&m->pk, (double)lua_tonumber(L, idx)));
    return 0;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    PK(m, msgpack_pack_str(&m->pk, n));
    PK(m, msgpack_pack_str_body(&m->pk, s, n));
    return 0;
  case LUA_TTABLE:
    return mp_table(m, idx, depth);
  case LUA_TLIGHTUSERDATA:
    if (lmrpc__is_null(L, idx)) {
      PK(m, msgpack_pack_nil(&m->pk));
      return 0;
    }
    /* fall through */
  default:
    return lmrpc__enc_bad_type(m->e, idx, "value");
  }
}

/* ---- msgpack decoding ----------------------------------------------------- */

#define LEFT(d) ((size_t)((d)->end - (d)->p))
#define OFF(d, q) ((size_t)((q) - (d)->start))

static uint32_t rd32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) << 32 | rd32(p + 4); }

static int truncated(lmrpc__dec_t *d, const unsigned char *at, const char *what) {
  return lmrpc__dec_fail(d, MRPC_EDECODE, "truncated msgpack: %s at offset %zu", what,
                         OFF(d, at));
}

/* Reads an n-byte big-endian length or integer that follows the type byte. */
static int mp_uint(lmrpc__dec_t *d, size_t n, uint64_t *v) {
  if (LEFT(d) < n)
    return truncated(d, d->p - 1, "header");
  *v = n == 1 ? d->p[0] : n == 2 ? (uint64_t)(d->p[0] << 8 | d->p[1])
      : n == 4 ? rd32(d->p) : rd64(d->p);
  d->p += n;
  return 0;
}

static int mp_bytes(lmrpc__dec_t *d, uint64_t len, const unsigned char *at) {
  if (len > LEFT(d))
    return truncated(d, at, "string longer than the bytes left");
  lua_pushlstring(d->L, (const char *)d->p, (size_t)len);
  d->p += len;
  return 0;
}

static int mp_value(lmrpc__dec_t *d, unsigned depth);

static int mp_open(lmrpc__dec_t *d, unsigned depth) {
  if (depth >= d->max_depth)
    return lmrpc__dec_fail(d, MRPC_EDEPTH, "msgpack nesting deeper than max_depth %u", d->max_depth);
  if (!lua_checkstack(d->L, 4))
    return lmrpc__dec_fail(d, MRPC_ENOMEM, "Lua stack exhausted");
  return 0;
}

/* Every item takes at least one byte, so a count above the bytes left is
 * truncated input; this also bounds what lua_createtable preallocates. */
static int mp_array(lmrpc__dec_t *d, uint64_t count, unsigned depth, const unsigned char *at) {
  uint64_t i;
  int rc;
  if ((rc = mp_open(d, depth)) != 0)
    return rc;
  if (count > LEFT(d) || count > INT32_MAX)
    return truncated(d, at, "array count larger than the bytes left");
  lua_createtable(d->L, (int)count, 0);
  for (i = 1; i <= count; i++) {
    if ((rc = mp_value(d, depth + 1)) != 0)
      return rc;
    lua_rawseti(d->L, -2, (lua_Integer)i);
  }
  return 0;
}

static int mp_map(lmrpc__dec_t *d, uint64_t count, unsigned depth, const unsigned char *at) {
  lua_State *L = d->L;
  uint64_t i;
  int rc;
  if ((rc = mp_open(d, depth)) != 0)
    return rc;
  if (count > LEFT(d) / 2 || count > INT32_MAX)
    return truncated(d, at, "map count larger than the bytes left");
  lua_createtable(L, 0, (int)count);
  for (i = 0; i < count; i++) {
    const unsigned char *k = d->p;
    if (k < d->end && *k == 0xc0)
      return lmrpc__dec_fail(d, MRPC_EDECODE, "msgpack map key is nil at offset %zu", OFF(d, k));
    if ((rc = mp_value(d, depth + 1)) != 0)
      return rc;
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1) && isnan(lua_tonumber(L, -1)))
      return lmrpc__dec_fail(d, MRPC_EDECODE, "msgpack map key is NaN at offset %zu", OFF(d, k));
    if ((rc = mp_value(d, depth + 1)) != 0)
      return rc;
    lua_rawset(L, -3);
  }
  return 0;
}

/* Ext values: only Go's timestamp (type -1, 4, 8 or 12 bytes) is known. */
static int mp_ext(lmrpc__dec_t *d, uint64_t len, const unsigned char *at) {
  int8_t type;
  uint64_t sec, nsec = 0;
  if (LEFT(d) < 1 || len > LEFT(d) - 1)
    return truncated(d, at, "ext longer than the bytes left");
  type = (int8_t)*d->p++;
  if (type != -1 || (len != 4 && len != 8 && len != 12))
    return lmrpc__dec_fail(d, MRPC_EDECODE, "msgpack ext type %d is not supported (offset %zu)",
                           type, OFF(d, at));
  if (len == 4) {
    sec = rd32(d->p);
  } else if (len == 8) {
    uint64_t v = rd64(d->p);
    nsec = v >> 34;
    sec = v & 0x3ffffffffu;
  } else {
    nsec = rd32(d->p);
    sec = rd64(d->p + 4);
  }
  d->p += len;
  lua_pushnumber(d->L, (lua_Number)(int64_t)sec + (lua_Number)nsec / 1e9);
  return 0;
}

/* Decodes one value and pushes it; `depth` containers enclose it. */
static int mp_value(lmrpc__dec_t *d, unsigned depth) {
  lua_State *L = d->L;
  const unsigned char *at = d->p;
  uint64_t v = 0;
  unsigned b;
  int rc;
  if (LEFT(d) < 1)
    return truncated(d, at, "missing value");
  b = *d->p++;
  if (b <= 0x7f || b >= 0xe0) {
    lua_pushinteger(L, (int8_t)b);
    return 0;
  }
  if (b <= 0x8f)
    return mp_map(d, b & 0x0f, depth, at);
  if (b <= 0x9f)
    return mp_array(d, b & 0x0f, depth, at);
  if (b <= 0xbf)
    return mp_bytes(d, b & 0x1f, at);
  switch (b) {
  case 0xc0:
    if (depth)
      lmrpc_push_null(L);
    else
      lua_pushnil(L);
    return 0;
  case 0xc2: lua_pushboolean(L, 0); return 0;
  case 0xc3: lua_pushboolean(L, 1); return 0;
  case 0xc4: case 0xd9: /* bin8, str8 */
  case 0xc5: case 0xda: /* bin16, str16 */
  case 0xc6: case 0xdb: /* bin32, str32 */
    rc = mp_uint(d, (size_t)1 << ((b >= 0xd9 ? b - 0xd9 : b - 0xc4)), &v);
    return rc ? rc : mp_bytes(d, v, at);
  case 0xc7: case 0xc8: case 0xc9: /* ext8/16/32 */
    rc = mp_uint(d, (size_t)1 << (b - 0xc7), &v);
    return rc ? rc : mp_ext(d, v, at);
  case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext 1..16 */
    return mp_ext(d, (uint64_t)1 << (b - 0xd4), at);
  case 0xca: case 0xcb: { /* float32, float64 */
    float f;
    double g;
    uint32_t u;
    if ((rc = mp_uint(d, b == 0xca ? 4 : 8, &v)) != 0)
      return rc;
    u = (uint32_t)v;
    memcpy(&f, &u, 4);
    memcpy(&g, &v, 8);
    lua_pushnumber(L, b == 0xca ? (lua_Number)f : (lua_Number)g);
    return 0;
  }
  case 0xcc: case 0xcd: case 0xce: case 0xcf: /* uint8..64 */
    if ((rc = mp_uint(d, (size_t)1 << (b - 0xcc), &v)) != 0)
      return rc;
    if (v > (uint64_t)INT64_MAX)
      lua_pushnumber(L, (lua_Number)v);
    else
      lua_pushinteger(L, (lua_Integer)v);
    return 0;
  case 0xd0: case 0xd1: case 0xd2: case 0xd3: { /* int8..64 */
    unsigned bits = 8u << (b - 0xd0);
    if ((rc = mp_uint(d, bits / 8, &v)) != 0)
      return rc;
    if (bits < 64 && (v >> (bits - 1)) & 1)
      v |= ~(uint64_t)0 << bits; /* sign-extend */
    lua_pushinteger(L, (lua_Integer)(int64_t)v);
    return 0;
  }
  case 0xdc: case 0xdd:
    rc = mp_uint(d, b == 0xdc ? 2 : 4, &v);
    return rc ? rc : mp_array(d, v, depth, at);
  case 0xde: case 0xdf:
    rc = mp_uint(d, b == 0xde ? 2 : 4, &v);
    return rc ? rc : mp_map(d, v, depth, at);
  default: /* 0xc1 */
    return lmrpc__dec_fail(d, MRPC_EDECODE, "invalid msgpack type byte 0x%02x at offset %zu",
                           b, OFF(d, at));
  }
}

/* Raw payloads: a string or bin(s), copied unchanged. */
static int raw_encode(lmrpc__enc_t *e, int idx) {
  lua_State *L = e->L;
  const char *s;
  size_t n;
  if (lua_type(L, idx) == LUA_TSTRING)
    s = lua_tolstring(L, idx, &n);
  else if (lua_type(L, idx) == LUA_TTABLE && is_bin(L, idx)) {
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
  mpenc_t m;
  size_t len0 = out->len;
  int top = lua_gettop(L), rc;
  if (err && errlen)
    err[0] = '\0';
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 4))
    return lmrpc__enc_fail(&e, MRPC_ENOMEM, "Lua stack exhausted");
  switch (serialize) {
  case LMRPC_SER_MSGPACK:
    m.e = &e;
    msgpack_packer_init(&m.pk, out, buf_write);
    rc = mp_encode(&m, idx, 0);
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
    rc = mp_value(&d, 0);
    if (!rc && d.p != d.end)
      rc = lmrpc__dec_fail(&d, MRPC_EDECODE, "%zu trailing byte(s) after the msgpack value",
                           LEFT(&d));
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
  luaL_setmetatable(L, BIN_MT);
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
  if (luaL_newmetatable(L, BIN_MT)) {
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
