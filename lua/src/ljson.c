/* ljson.c: the JSON codec (rpcx serialize type 1), called by lcodec.c's
 * dispatch; it calls only the value helpers of lvalue.c. The encoder
 * writes what Go's encoding/json writes for the same data: no spaces, exact
 * integers, the shortest round-tripping float, []byte as base64. The decoder
 * is a small recursive-descent parser over untrusted bytes that pushes onto
 * the Lua stack directly; its recursion is bounded by max_depth. The mapping
 * is documented at the top of lcodec.c. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lvalue.h"

/* ---- encoding --------------------------------------------------------------- */

#define PUT(e, p, n)                                                          \
  do {                                                                        \
    if (mrpc_buf_append((e)->out, (p), (n)) != 0)                             \
      return lmrpc__enc_fail((e), MRPC_ENOMEM, "out of memory");              \
  } while (0)

/* Writes s[0..n) as a JSON string. Runs of bytes that need no escape are
 * copied in one piece; bytes >= 0x80 pass through unchanged. */
static int put_string(lmrpc__enc_t *e, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0, run;
  char esc[6];
  if (mrpc_buf_reserve(e->out, n + 2) != 0)
    return lmrpc__enc_fail(e, MRPC_ENOMEM, "out of memory");
  PUT(e, "\"", 1);
  while (i < n) {
    unsigned char c;
    for (run = i; run < n; run++) {
      c = (unsigned char)s[run];
      if (c < 0x20 || c == '"' || c == '\\')
        break;
    }
    PUT(e, s + i, run - i);
    if (run == n)
      break;
    c = (unsigned char)s[run];
    esc[0] = '\\';
    switch (c) {
    case '"': case '\\': esc[1] = (char)c; break;
    case '\b': esc[1] = 'b'; break;
    case '\f': esc[1] = 'f'; break;
    case '\n': esc[1] = 'n'; break;
    case '\r': esc[1] = 'r'; break;
    case '\t': esc[1] = 't'; break;
    default:
      memcpy(esc + 1, "u00", 3);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 15];
      PUT(e, esc, 6);
      i = run + 1;
      continue;
    }
    PUT(e, esc, 2);
    i = run + 1;
  }
  PUT(e, "\"", 1);
  return 0;
}

/* Formats an integer in decimal into buf (24 bytes); returns the length. */
static size_t fmt_int(char *buf, lua_Integer v) {
  char tmp[24];
  size_t n = 0, len = 0;
  uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (v < 0)
    buf[len++] = '-';
  while (n)
    buf[len++] = tmp[--n];
  return len;
}

/* Formats a finite double with the fewest of 15, 16 or 17 significant digits
 * that read back as the same value. buf holds 32 bytes. */
static size_t fmt_float(char *buf, double v) {
  int prec, n = 0;
  for (prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, 32, "%.*g", prec, v);
    if (prec == 17 || strtod(buf, NULL) == v)
      break;
  }
  for (int i = 0; i < n; i++)
    if (buf[i] == ',') /* a locale's decimal comma */
      buf[i] = '.';
  return (size_t)n;
}

static int put_number(lmrpc__enc_t *e, int idx, int quoted) {
  char buf[34];
  size_t n;
  if (lua_isinteger(e->L, idx)) {
    n = fmt_int(buf + 1, lua_tointeger(e->L, idx));
  } else {
    double v = (double)lua_tonumber(e->L, idx);
    if (isnan(v) || isinf(v))
      return lmrpc__enc_fail(e, MRPC_EENCODE, "cannot encode NaN or infinity in JSON");
    n = fmt_float(buf + 1, v);
  }
  if (!quoted) {
    PUT(e, buf + 1, n);
    return 0;
  }
  buf[0] = buf[n + 1] = '"';
  PUT(e, buf, n + 2);
  return 0;
}

/* Writes s[0..n) as a quoted base64 string (standard alphabet, padded). */
static int put_base64(lmrpc__enc_t *e, const unsigned char *s, size_t n) {
  static const char tab[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, need = (n + 2) / 3 * 4 + 2;
  char *o;
  if (mrpc_buf_reserve(e->out, need) != 0)
    return lmrpc__enc_fail(e, MRPC_ENOMEM, "out of memory");
  o = e->out->data + e->out->len;
  *o++ = '"';
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    *o++ = tab[v >> 18];
    *o++ = tab[v >> 12 & 63];
    *o++ = tab[v >> 6 & 63];
    *o++ = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
    *o++ = tab[v >> 18];
    *o++ = tab[v >> 12 & 63];
    *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
    *o++ = '=';
  }
  *o++ = '"';
  e->out->len += need;
  return 0;
}

static int put_key(lmrpc__enc_t *e, int kidx) {
  size_t n;
  const char *s;
  switch (lua_type(e->L, kidx)) {
  case LUA_TSTRING:
    s = lua_tolstring(e->L, kidx, &n);
    return put_string(e, s, n);
  case LUA_TNUMBER:
    return put_number(e, kidx, 1);
  default:
    return lmrpc__enc_bad_type(e, kidx, "as a JSON object key");
  }
}

static int put_table(lmrpc__enc_t *e, int idx, unsigned depth) {
  lua_State *L = e->L;
  size_t n, i;
  int rc, kind;
  if (depth >= e->max_depth)
    return lmrpc__enc_fail(e, MRPC_EDEPTH, "table nesting deeper than max_depth %u (or a cycle)",
                           e->max_depth);
  if (!lua_checkstack(L, 4))
    return lmrpc__enc_fail(e, MRPC_ENOMEM, "Lua stack exhausted");
  kind = lmrpc__table_kind(L, idx, &n);
  if (kind == LMRPC__BIN) {
    const char *s = lmrpc__bin_bytes(e, idx, &n);
    return s ? put_base64(e, (const unsigned char *)s, n) : MRPC_EENCODE;
  }
  if (kind == LMRPC__ARRAY) {
    PUT(e, "[", 1);
    for (i = 1; i <= n; i++) {
      if (i > 1)
        PUT(e, ",", 1);
      lua_rawgeti(L, idx, (lua_Integer)i);
      rc = lmrpc__json_encode(e, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
      if (rc) {
        lmrpc__enc_path_index(e, (lua_Integer)i);
        return rc;
      }
    }
    PUT(e, "]", 1);
    return 0;
  }
  PUT(e, "{", 1);
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    if (i++ > 0)
      PUT(e, ",", 1);
    if ((rc = put_key(e, top - 1)) == 0) {
      PUT(e, ":", 1);
      if ((rc = lmrpc__json_encode(e, top, depth + 1)) != 0)
        lmrpc__enc_path_key(e, top - 1);
    }
    if (rc) {
      lua_pop(L, 2);
      return rc;
    }
    lua_pop(L, 1);
  }
  PUT(e, "}", 1);
  return 0;
}

int lmrpc__json_encode(lmrpc__enc_t *e, int idx, unsigned depth) {
  lua_State *L = e->L;
  size_t n;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    PUT(e, "null", 4);
    return 0;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx))
      PUT(e, "true", 4);
    else
      PUT(e, "false", 5);
    return 0;
  case LUA_TNUMBER:
    return put_number(e, idx, 0);
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    return put_string(e, s, n);
  case LUA_TTABLE:
    return put_table(e, idx, depth);
  case LUA_TLIGHTUSERDATA:
    if (lmrpc__is_null(L, idx)) {
      PUT(e, "null", 4);
      return 0;
    }
    /* fall through */
  default:
    return lmrpc__enc_bad_type(e, idx, "value");
  }
}

/* ---- decoding ----------------------------------------------------------------- */

#define OFF(d) ((size_t)((d)->p - (d)->start))

static void skip_ws(lmrpc__dec_t *d) {
  while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
    d->p++;
}

static int bad(lmrpc__dec_t *d, const char *what) {
  if (d->p >= d->end)
    return lmrpc__dec_fail(d, MRPC_EDECODE, "invalid JSON: %s, found the end of input", what);
  return lmrpc__dec_fail(d, MRPC_EDECODE, "invalid JSON: %s at offset %zu", what, OFF(d));
}

static int is_digit(const unsigned char *p, const unsigned char *end) {
  return p < end && *p >= '0' && *p <= '9';
}

/* Numbers follow RFC 8259's grammar. Integers of up to 18 digits are
 * converted here; everything else goes through lua_stringtonumber, which
 * keeps integers that fit int64 exact and turns the rest into floats. */
static int js_number(lmrpc__dec_t *d) {
  const unsigned char *s = d->p, *q = s, *end = d->end;
  int isint = 1;
  char buf[64];
  size_t len;
  if (*q == '-')
    q++;
  if (!is_digit(q, end))
    return d->p = q, bad(d, "digit expected");
  if (*q == '0')
    q++;
  else
    while (is_digit(q, end))
      q++;
  if (q < end && *q == '.') {
    isint = 0;
    if (!is_digit(++q, end))
      return d->p = q, bad(d, "digit expected");
    while (is_digit(q, end))
      q++;
  }
  if (q < end && (*q == 'e' || *q == 'E')) {
    isint = 0;
    if (++q < end && (*q == '+' || *q == '-'))
      q++;
    if (!is_digit(q, end))
      return d->p = q, bad(d, "digit expected");
    while (is_digit(q, end))
      q++;
  }
  d->p = q;
  len = (size_t)(q - s);
  if (isint && len - (*s == '-') <= 18) {
    lua_Integer v = 0;
    for (const unsigned char *c = s + (*s == '-'); c < q; c++)
      v = v * 10 + (*c - '0');
    lua_pushinteger(d->L, *s == '-' ? -v : v);
  } else if (len < sizeof buf) {
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (!lua_stringtonumber(d->L, buf))
      return d->p = s, bad(d, "number out of range");
  } else {
    lua_pushlstring(d->L, (const char *)s, len);
    if (!lua_stringtonumber(d->L, lua_tostring(d->L, -1)))
      return d->p = s, bad(d, "number out of range");
    lua_remove(d->L, -2);
  }
  return 0;
}

static int hex4(const unsigned char *p) {
  int v = 0;
  for (int i = 0; i < 4; i++) {
    int c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= c - '0';
    else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
    else return -1;
  }
  return v;
}

static char *put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    *o++ = (char)cp;
  } else if (cp < 0x800) {
    *o++ = (char)(0xc0 | cp >> 6);
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    *o++ = (char)(0xe0 | cp >> 12);
    *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  } else {
    *o++ = (char)(0xf0 | cp >> 18);
    *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
    *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
    *o++ = (char)(0x80 | (cp & 0x3f));
  }
  return o;
}

/* Unescapes the string body [q, r), whose first escape is at q, after the
 * plain prefix [s, q). The result is never longer than the input. */
static int js_unescape(lmrpc__dec_t *d, const unsigned char *s, const unsigned char *q,
                       const unsigned char *r) {
  luaL_Buffer b;
  char *o0, *o;
  if (!lua_checkstack(d->L, 3))
    return lmrpc__dec_fail(d, MRPC_ENOMEM, "Lua stack exhausted");
  o0 = o = luaL_buffinitsize(d->L, &b, (size_t)(r - s));
  memcpy(o, s, (size_t)(q - s));
  o += q - s;
  while (q < r) {
    int cp;
    if (*q != '\\') {
      *o++ = (char)*q++;
      continue;
    }
    switch (q[1]) {
    case '"': case '\\': case '/': *o++ = (char)q[1]; break;
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'u':
      if (r - q < 6 || (cp = hex4(q + 2)) < 0)
        return d->p = q, bad(d, "bad \\u escape");
      if (cp >= 0xd800 && cp <= 0xdbff && r - q >= 12 && q[6] == '\\' && q[7] == 'u') {
        int lo = hex4(q + 8);
        if (lo >= 0xdc00 && lo <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          q += 6;
        }
      }
      if (cp >= 0xd800 && cp <= 0xdfff)
        cp = 0xfffd; /* a lone surrogate, as Go does */
      o = put_utf8(o, (unsigned)cp);
      q += 4;
      break;
    default:
      return d->p = q, bad(d, "bad escape");
    }
    q += 2;
  }
  luaL_pushresultsize(&b, (size_t)(o - o0));
  return 0;
}

static int js_string(lmrpc__dec_t *d) {
  const unsigned char *s = ++d->p, *q = s, *r, *end = d->end;
  while (q < end && *q != '"' && *q != '\\' && *q >= 0x20)
    q++;
  if (q < end && *q == '"') { /* no escapes: the common case */
    lua_pushlstring(d->L, (const char *)s, (size_t)(q - s));
    d->p = q + 1;
    return 0;
  }
  for (r = q; r < end && *r != '"'; r++) {
    if (*r < 0x20)
      return d->p = r, bad(d, "control character in string");
    if (*r == '\\' && ++r == end)
      break;
  }
  if (r >= end)
    return d->p = end, bad(d, "unterminated string");
  d->p = r + 1;
  return js_unescape(d, s, q, r);
}

static int js_value(lmrpc__dec_t *d, unsigned depth);

static int js_open(lmrpc__dec_t *d, unsigned depth) {
  if (depth >= d->max_depth)
    return lmrpc__dec_fail(d, MRPC_EDEPTH, "JSON nesting deeper than max_depth %u", d->max_depth);
  if (!lua_checkstack(d->L, 4))
    return lmrpc__dec_fail(d, MRPC_ENOMEM, "Lua stack exhausted");
  d->p++;
  return 0;
}

/* After an item: consumes ',' (returns 1) or the closing byte (returns 0). */
static int js_next(lmrpc__dec_t *d, char close, int *rc) {
  skip_ws(d);
  if (d->p < d->end && (*d->p == ',' || *d->p == close))
    return *d->p++ == ',';
  *rc = bad(d, close == ']' ? "',' or ']' expected" : "',' or '}' expected");
  return 0;
}

static int js_array(lmrpc__dec_t *d, unsigned depth) {
  lua_Integer i = 0;
  int rc = js_open(d, depth);
  if (rc)
    return rc;
  lua_createtable(d->L, 4, 0);
  skip_ws(d);
  if (d->p < d->end && *d->p == ']') {
    d->p++;
    return 0;
  }
  do {
    if ((rc = js_value(d, depth + 1)) != 0)
      return rc;
    lua_rawseti(d->L, -2, ++i);
  } while (js_next(d, ']', &rc));
  return rc;
}

static int js_object(lmrpc__dec_t *d, unsigned depth) {
  int rc = js_open(d, depth);
  if (rc)
    return rc;
  lua_createtable(d->L, 0, 4);
  skip_ws(d);
  if (d->p < d->end && *d->p == '}') {
    d->p++;
    return 0;
  }
  do {
    skip_ws(d);
    if (d->p >= d->end || *d->p != '"')
      return bad(d, "string key expected");
    if ((rc = js_string(d)) != 0)
      return rc;
    skip_ws(d);
    if (d->p >= d->end || *d->p != ':')
      return bad(d, "':' expected");
    d->p++;
    if ((rc = js_value(d, depth + 1)) != 0)
      return rc;
    lua_rawset(d->L, -3);
  } while (js_next(d, '}', &rc));
  return rc;
}

static int js_literal(lmrpc__dec_t *d, const char *word, size_t n) {
  if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
    return bad(d, "unexpected word");
  d->p += n;
  return 0;
}

/* Decodes one value and pushes it; `depth` containers enclose it. */
static int js_value(lmrpc__dec_t *d, unsigned depth) {
  int rc;
  skip_ws(d);
  if (d->p >= d->end)
    return bad(d, "value expected");
  switch (*d->p) {
  case '{': return js_object(d, depth);
  case '[': return js_array(d, depth);
  case '"': return js_string(d);
  case 't':
    if ((rc = js_literal(d, "true", 4)) == 0)
      lua_pushboolean(d->L, 1);
    return rc;
  case 'f':
    if ((rc = js_literal(d, "false", 5)) == 0)
      lua_pushboolean(d->L, 0);
    return rc;
  case 'n':
    if ((rc = js_literal(d, "null", 4)) == 0) {
      if (depth)
        lmrpc_push_null(d->L);
      else
        lua_pushnil(d->L);
    }
    return rc;
  default:
    if (*d->p == '-' || (*d->p >= '0' && *d->p <= '9'))
      return js_number(d);
    return bad(d, "value expected");
  }
}

int lmrpc__json_decode(lmrpc__dec_t *d) {
  int rc = js_value(d, 0);
  if (rc)
    return rc;
  skip_ws(d);
  if (d->p != d->end)
    return bad(d, "trailing bytes after the value");
  return 0;
}
