/* lcodec.h: conversion between Lua values and rpcx payload bytes (raw,
 * JSON, msgpack) for the moonrpc Lua binding, the interface the classes
 * (lserver.c, lclient.c) and the module's entry (lmoonrpc.c) use.
 * lcodec.c dispatches by serialize type and holds the raw codec and the
 * Lua-facing functions; it may call the codecs below it, lmsgpack.c and
 * ljson.c, and their shared value helpers (lvalue.h), and nothing of the
 * rest of the binding. The mapping between Lua values and each format is
 * documented at the top of lcodec.c. */
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

#endif
