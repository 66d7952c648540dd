/* buf.c: the growable byte buffer, big-endian integer helpers and the
 * defaults of the named limits.
 *
 * A buffer grows geometrically (doubling, from a small floor) so appending
 * n bytes one at a time costs O(n) overall. Every size computation is
 * checked for size_t overflow; an impossible size is reported as
 * MRPC_ENOMEM, the same as a failed malloc. */
#include <stdlib.h>
#include <string.h>

#include "moonrpc/common.h"

#define BUF_MIN_CAP 64

int mrpc_buf_reserve(mrpc_buf_t *b, size_t extra) {
  size_t need, cap;
  char *p;

  if (extra > SIZE_MAX - b->len)
    return MRPC_ENOMEM;
  need = b->len + extra;
  if (need <= b->cap)
    return 0;
  cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  p = realloc(b->data, cap);
  if (p == NULL)
    return MRPC_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int mrpc_buf_append(mrpc_buf_t *b, const void *p, size_t n) {
  int rc;

  if (n == 0)
    return 0;
  rc = mrpc_buf_reserve(b, n);
  if (rc != 0)
    return rc;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int mrpc_buf_put_u32(mrpc_buf_t *b, uint32_t v) {
  unsigned char be[4];

  be[0] = (unsigned char)(v >> 24);
  be[1] = (unsigned char)(v >> 16);
  be[2] = (unsigned char)(v >> 8);
  be[3] = (unsigned char)v;
  return mrpc_buf_append(b, be, sizeof be);
}

int mrpc_buf_put_u64(mrpc_buf_t *b, uint64_t v) {
  int rc = mrpc_buf_put_u32(b, (uint32_t)(v >> 32));

  return rc != 0 ? rc : mrpc_buf_put_u32(b, (uint32_t)v);
}

void mrpc_buf_consume(mrpc_buf_t *b, size_t n) {
  if (n >= b->len) {
    b->len = 0;
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void mrpc_buf_free(mrpc_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
}

uint32_t mrpc_get_u32(const void *p) {
  const unsigned char *s = p;

  return ((uint32_t)s[0] << 24) | ((uint32_t)s[1] << 16) |
         ((uint32_t)s[2] << 8) | (uint32_t)s[3];
}

uint64_t mrpc_get_u64(const void *p) {
  const unsigned char *s = p;

  return ((uint64_t)mrpc_get_u32(s) << 32) | mrpc_get_u32(s + 4);
}

void mrpc_limits_default(mrpc_limits_t *l) {
  if (l->max_frame == 0)
    l->max_frame = MRPC_DEFAULT_MAX_FRAME;
  if (l->max_meta_pairs == 0)
    l->max_meta_pairs = MRPC_DEFAULT_MAX_META_PAIRS;
  if (l->max_meta_bytes == 0)
    l->max_meta_bytes = MRPC_DEFAULT_MAX_META_BYTES;
  if (l->max_decompressed == 0)
    l->max_decompressed = MRPC_DEFAULT_MAX_DECOMPRESSED;
  if (l->max_depth == 0)
    l->max_depth = MRPC_DEFAULT_MAX_DEPTH;
  if (l->max_conns == 0)
    l->max_conns = MRPC_DEFAULT_MAX_CONNS;
  if (l->max_write_queue == 0)
    l->max_write_queue = MRPC_DEFAULT_MAX_WRITE_QUEUE;
}
