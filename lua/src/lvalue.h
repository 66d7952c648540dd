/* lvalue.h: Lua values as the payload codecs see them, the layer below the
 * JSON codec (ljson.c) and the msgpack codec (lmsgpack.c). It defines the
 * encoder and decoder state both codecs work on, the moonrpc.null sentinel
 * and moonrpc.bin values, how a table is classified (array, map or bin),
 * and how a failure is reported: a message, and for encoding the path of
 * keys that led to the bad value.
 *
 * lvalue.c may call only Lua's C API and the core's mrpc_buf_t and error
 * names (moonrpc/common.h); it knows nothing of serialize types. The codecs
 * call down into it and never into lcodec.c, the dispatcher by serialize
 * type that sits above them (lcodec.h). The mapping between Lua values and
 * each format is documented at the top of lcodec.c. */
#ifndef MOONRPC_LVALUE_H
#define MOONRPC_LVALUE_H

#include <stddef.h>
#include <lua.h>
#include "moonrpc/common.h"

/* The registry name of moonrpc.bin(s)'s metatable; lcodec.c creates it. */
#define LMRPC_BIN_MT "moonrpc.bin"

/* Encoder state. err/errlen receive the base message of the first failure;
 * path collects, innermost first, the keys leading to it. Owns nothing: out
 * and err belong to the caller of lmrpc_encode. */
typedef struct lmrpc__enc_s {
  lua_State *L;
  mrpc_buf_t *out;
  unsigned max_depth;
  char *err;
  size_t errlen;
  size_t pstart;  /* the path is path[pstart..sizeof path) */
  char path[160];
} lmrpc__enc_t;

/* Decoder state over the untrusted bytes [p, end). Owns nothing: the bytes
 * and err belong to the caller of lmrpc_decode. */
typedef struct lmrpc__dec_s {
  lua_State *L;
  const unsigned char *start, *p, *end;
  unsigned max_depth;
  char *err;
  size_t errlen;
} lmrpc__dec_t;

/* Pushes moonrpc.null (a light userdata holding NULL). */
void lmrpc_push_null(lua_State *L);
/* Nonzero if the value at idx is moonrpc.null. */
int lmrpc__is_null(lua_State *L, int idx);

/* Nonzero if the table at idx has the moonrpc.bin metatable. Uses two
 * stack slots while running. */
int lmrpc__is_bin(lua_State *L, int idx);
/* The bytes of bin(s), the table at idx; they stay valid while the table
 * does. NULL (and e->err set) if the table holds no string. */
const char *lmrpc__bin_bytes(lmrpc__enc_t *e, int idx, size_t *n);

/* Table shapes, as told by lmrpc__table_kind. */
enum { LMRPC__ARRAY, LMRPC__MAP, LMRPC__BIN };

/* Classifies the table at absolute index idx; *n gets the array length or
 * the number of map pairs. Uses two stack slots while running. */
int lmrpc__table_kind(lua_State *L, int idx, size_t *n);

/* Formats a failure into e->err (d->err) and returns code. */
int lmrpc__enc_fail(lmrpc__enc_t *e, int code, const char *fmt, ...);
int lmrpc__dec_fail(lmrpc__dec_t *d, int code, const char *fmt, ...);
/* Records the key at stack index kidx as the next outer step of the path. */
void lmrpc__enc_path_key(lmrpc__enc_t *e, int kidx);
void lmrpc__enc_path_index(lmrpc__enc_t *e, lua_Integer i);
/* Reports that the value at absolute index idx has no encoding. */
int lmrpc__enc_bad_type(lmrpc__enc_t *e, int idx, const char *what);

/* ---- the codecs built on this layer, called only by lcodec.c ---- */

/* The msgpack codec (lmsgpack.c). Same contracts as lmrpc_encode/decode. */
int lmrpc__mp_encode(lmrpc__enc_t *e, int idx);
int lmrpc__mp_decode(lmrpc__dec_t *d);

/* The JSON codec (ljson.c). Same contracts as lmrpc_encode/decode. */
int lmrpc__json_encode(lmrpc__enc_t *e, int idx, unsigned depth);
int lmrpc__json_decode(lmrpc__dec_t *d);

#endif
