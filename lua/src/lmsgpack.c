/* lmsgpack.c: the msgpack codec of the Lua binding (see lcodec.c for the
 * mapping), called by lcodec.c's dispatch; it calls only the value helpers
 * of lvalue.c and msgpack-c's packer. Encoding goes through that packer,
 * writing into our own buffer; decoding is our own bounds-checked reader
 * that pushes values straight onto the Lua stack: no intermediate object
 * tree, no count taken from the wire before the bytes behind it are there,
 * and an exact depth limit. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <lauxlib.h>
#include <msgpack.h>
#include "lvalue.h"

/* ---- msgpack encoding ----------------------------------------------------- */

/* The encoder of one lmrpc__mp_encode call, on its stack; owns nothing. */
typedef struct mpenc_s {
  lmrpc__enc_t *e;     /* borrowed: the caller's encoder state */
  msgpack_packer pk;   /* writes into e->out through buf_write */
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


int lmrpc__mp_encode(lmrpc__enc_t *e, int idx) {
  mpenc_t m;
  m.e = e;
  msgpack_packer_init(&m.pk, e->out, buf_write);
  return mp_encode(&m, idx, 0);
}

int lmrpc__mp_decode(lmrpc__dec_t *d) {
  int rc = mp_value(d, 0);
  if (!rc && d->p != d->end)
    rc = lmrpc__dec_fail(d, MRPC_EDECODE, "%zu trailing byte(s) after the msgpack value",
                         LEFT(d));
  return rc;
}
