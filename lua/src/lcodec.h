/* lcodec.h: conversion between Lua values and rpcx payload bytes (raw,
 * JSON, msgpack) for the moonrpc Lua binding. lcodec.c holds the msgpack and
 * raw codecs and the Lua-facing functions; ljson.c holds JSON. The mapping
 * between Lua values and each format is documented at the top of lcodec.c. */
#ifndef MOONRPC_LCODEC_H
#define MOONRPC_LCODEC_H

#include <stddef.h>
#include <lua.h>
#include "moonrpc/common.h"

/* rpcx serialize types this module speaks. Any other -> MRPC_ECODEC. */
#define LMRPC_SER_RAW 0
#define LMRPC_SER_JSON 1
#define LMRPC_SER_MSGPACK 3

/* Encodes the Lua value at stack index idx, appending to out. max_depth 0
 * means MRPC_DEFAULT_MAX_DEPTH; it also bounds the C recursion of both
 * lmrpc_encode and lmrpc_decode, so keep it in the hundreds at most. On failure returns a negative MRPC_E*, leaves
 * out->len as it was and writes a NUL-terminated message into err (errlen
 * bytes; err may be NULL). Never raises (memory errors aside), never leaves
 * anything on the stack. */
int lmrpc_encode(lua_State *L, int idx, int serialize, mrpc_buf_t *out,
                 unsigned max_depth, char *err, size_t errlen);

/* Decodes p[0..n) and pushes exactly one Lua value, returning 0. On failure
 * pushes nothing, returns MRPC_EDECODE (malformed, truncated or trailing
 * bytes), MRPC_EDEPTH (past max_depth; 0 means the default) or MRPC_ECODEC
 * (unknown serialize type), and fills err. Never raises (memory errors
 * aside). */
int lmrpc_decode(lua_State *L, int serialize, const char *p, size_t n,
                 unsigned max_depth, char *err, size_t errlen);

/* Adds to the table at the top of the stack, and registers the "moonrpc.bin"
 * metatable:
 *   encode(value [, serialize [, max_depth]]) -> string | nil, code, msg
 *   decode(string [, serialize [, max_depth]]) -> value | nil, code, msg
 *   null, the sentinel; bin(s) -> a value msgpack writes as bin.
 * serialize is 0, 1, 3 or "raw"/"none", "json", "msgpack" (the default); an
 * unknown number fails with ECODEC, a bad name or argument type raises.
 * code is a name such as "EDECODE" (mrpc_err_name). */
void lmrpc_codec_open(lua_State *L);

/* Pushes moonrpc.null (a light userdata holding NULL). */
void lmrpc_push_null(lua_State *L);

/* ---- internal: shared by lcodec.c and ljson.c ---- */

/* Encoder state. err/errlen receive the base message of the first failure;
 * path collects, innermost first, the keys leading to it. */
typedef struct lmrpc__enc_s {
  lua_State *L;
  mrpc_buf_t *out;
  unsigned max_depth;
  char *err;
  size_t errlen;
  size_t pstart;  /* the path is path[pstart..sizeof path) */
  char path[160];
} lmrpc__enc_t;

/* Decoder state over the untrusted bytes [p, end). */
typedef struct lmrpc__dec_s {
  lua_State *L;
  const unsigned char *start, *p, *end;
  unsigned max_depth;
  char *err;
  size_t errlen;
} lmrpc__dec_t;

/* Table shapes, as told by lmrpc__table_kind. */
enum { LMRPC__ARRAY, LMRPC__MAP, LMRPC__BIN };

/* Classifies the table at absolute index idx; *n gets the array length or
 * the number of map pairs. Uses two stack slots while running. */
int lmrpc__table_kind(lua_State *L, int idx, size_t *n);
/* The bytes of bin(s), the table at idx; they stay valid while the table
 * does. NULL (and e->err set) if the table holds no string. */
const char *lmrpc__bin_bytes(lmrpc__enc_t *e, int idx, size_t *n);
/* Nonzero if the value at idx is moonrpc.null. */
int lmrpc__is_null(lua_State *L, int idx);
/* Formats a failure into e->err and returns code. */
int lmrpc__enc_fail(lmrpc__enc_t *e, int code, const char *fmt, ...);
int lmrpc__dec_fail(lmrpc__dec_t *d, int code, const char *fmt, ...);
/* Records the key at stack index kidx as the next outer step of the path. */
void lmrpc__enc_path_key(lmrpc__enc_t *e, int kidx);
void lmrpc__enc_path_index(lmrpc__enc_t *e, lua_Integer i);
/* Reports that the value at absolute index idx has no encoding. */
int lmrpc__enc_bad_type(lmrpc__enc_t *e, int idx, const char *what);

/* The msgpack codec (lmsgpack.c). Same contracts as lmrpc_encode/decode. */
int lmrpc__mp_encode(lmrpc__enc_t *e, int idx);
int lmrpc__mp_decode(lmrpc__dec_t *d);

/* The JSON codec (ljson.c). Same contracts as lmrpc_encode/decode. */
int lmrpc__json_encode(lmrpc__enc_t *e, int idx, unsigned depth);
int lmrpc__json_decode(lmrpc__dec_t *d);

#endif
