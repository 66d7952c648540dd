/* codec/codec.h (internal): the codec layer, pure code over bytes, with no
 * socket and no loop. Its public half is in moonrpc/frame.h and
 * moonrpc/common.h: the rpcx frame encoder and streaming decoder (frame.c),
 * gzip with its cap (gzip.c), the growable buffer and the limits' defaults
 * (buf.c). This header adds the internal half: the bounded msgpack <-> cJSON
 * bridge (jsonpack.c) that reflection and the embedded registry use to
 * answer in whichever codec the caller sent. The codec calls only base/,
 * zlib, msgpack-c and cJSON. */
#ifndef MOONRPC_CODEC_H
#define MOONRPC_CODEC_H

#include <cjson/cJSON.h>
#include "base/base.h"

/* Decodes one msgpack value filling exactly `len` bytes into a new cJSON
 * tree (the caller deletes it). NULL when the bytes are not one msgpack
 * value, hold a non-string map key or an ext, nest past max_depth, or
 * announce an array or map of more elements than bytes are left (checked
 * before anything is allocated for them). */
cJSON *mrpc__msgpack_to_json(const char *data, size_t len, unsigned max_depth);

/* Appends the msgpack encoding of `j` to `out`: integral numbers as
 * integers, others as float64. 0, MRPC_EDEPTH or MRPC_ENOMEM. */
int mrpc__json_to_msgpack(const cJSON *j, mrpc_buf_t *out, unsigned max_depth);

/* A service's reply in the caller's codec: msgpack into `pack` (reused),
 * else JSON text in *text (free it with cJSON_free; NULL for msgpack).
 * *p, *n: the bytes to send. 0, MRPC_EDEPTH or MRPC_ENOMEM. */
int mrpc__json_encode(const cJSON *o, int ser, mrpc_buf_t *pack, char **text, const char **p,
                      size_t *n);

/* A request's arguments in the caller's codec (msgpack, else JSON); no
 * bytes are an empty object. NULL when they do not decode. */
cJSON *mrpc__json_decode(const char *data, size_t len, int ser, unsigned max_depth);

#endif
