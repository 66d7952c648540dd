/* frame.c: the rpcx frame codec: encoder, metadata lookup and the
 * streaming decoder.
 *
 * The decoder is pure (bytes in, frames out) and zero-copy: a decoded
 * frame's path, method and raw payload point into d->in, its metadata pairs
 * live in d->meta and an inflated payload in d->inflate. Consumed bytes are
 * dropped lazily, in reserve/feed, so a frame handed out by next() stays in
 * place until the caller asks for room for more input. d->meta and
 * d->inflate are reused by the following next().
 *
 * Every length read from the wire is checked against the bytes actually
 * there before it is used, in size_t or uint64_t arithmetic so no 32-bit
 * field can overflow a sum. Each check fails with its own MRPC_E* code and
 * the decoder then stays in that error ("sticky") until reset. */
#include <stdlib.h>
#include <string.h>

#include "moonrpc/frame.h"

/* Room offered by reserve when the caller suggests none. */
#define RESERVE_DEFAULT (64u * 1024)
/* First size of the metadata pair array. */
#define META_MIN_CAP 8
/* An inflate buffer larger than this is released before the next frame, so
 * one big payload does not pin its memory for the connection's lifetime. */
#define INFLATE_KEEP (256u * 1024)

/* ---- encoder ---------------------------------------------------------- */

/* Bytes of the metadata block of `f`, or UINT64_MAX if it cannot fit. */
static uint64_t meta_block_len(const mrpc_frame_t *f) {
  uint64_t n = 0;
  size_t i;

  for (i = 0; i < f->meta_count; i++) {
    const mrpc_meta_t *m = &f->meta[i];
    if (m->key_len > UINT32_MAX || m->val_len > UINT32_MAX)
      return UINT64_MAX;
    n += 8 + (uint64_t)m->key_len + m->val_len;
    if (n > UINT32_MAX)
      return UINT64_MAX;
  }
  return n;
}

/* Appends one section: a uint32 length and the bytes. Room is reserved. */
static void put_section(mrpc_buf_t *out, const void *p, size_t n) {
  mrpc_buf_put_u32(out, (uint32_t)n);
  mrpc_buf_append(out, p, n);
}

int mrpc_frame_encode(mrpc_buf_t *out, const mrpc_frame_t *f) {
  const char *pay = f->wire_payload != NULL ? f->wire_payload : f->payload;
  size_t pay_len =
      f->wire_payload != NULL ? f->wire_payload_len : f->payload_len;
  uint64_t meta_len = meta_block_len(f), total;
  unsigned char head[4];
  size_t i;
  int rc;

  if (meta_len == UINT64_MAX || f->path_len > UINT32_MAX ||
      f->method_len > UINT32_MAX || pay_len > UINT32_MAX)
    return MRPC_ETOOBIG;
  total = 16 + (uint64_t)f->path_len + f->method_len + meta_len + pay_len;
  if (total > UINT32_MAX || total + MRPC_HEADER_LEN > SIZE_MAX)
    return MRPC_ETOOBIG;
  /* Reserving the whole frame first means no append below can fail, so a
   * failure never leaves half a frame in `out`. */
  rc = mrpc_buf_reserve(out, (size_t)(total + MRPC_HEADER_LEN));
  if (rc != 0)
    return rc;

  head[0] = MRPC_MAGIC;
  head[1] = f->version;
  head[2] = f->flags;
  head[3] = f->serialize;
  mrpc_buf_append(out, head, sizeof head);
  mrpc_buf_put_u64(out, f->seq);
  mrpc_buf_put_u32(out, (uint32_t)total);
  put_section(out, f->path, f->path_len);
  put_section(out, f->method, f->method_len);
  mrpc_buf_put_u32(out, (uint32_t)meta_len);
  for (i = 0; i < f->meta_count; i++) {
    put_section(out, f->meta[i].key, f->meta[i].key_len);
    put_section(out, f->meta[i].val, f->meta[i].val_len);
  }
  put_section(out, pay, pay_len);
  return 0;
}

int mrpc_frame_encode_auto(mrpc_buf_t *out, const mrpc_frame_t *f, int gzip,
                           mrpc_buf_t *scratch) {
  mrpc_frame_t g = *f;
  int rc;

  g.flags = (uint8_t)(f->flags & ~MRPC_FLAG_COMPRESS);
  g.wire_payload = NULL;
  g.wire_payload_len = 0;
  if (gzip && f->payload_len > MRPC_GZIP_THRESHOLD) {
    scratch->len = 0;
    rc = mrpc_gzip_compress(scratch, f->payload, f->payload_len);
    if (rc != 0)
      return rc;
    g.flags |= (uint8_t)(MRPC_COMPRESS_GZIP << 2);
    g.wire_payload = scratch->data;
    g.wire_payload_len = scratch->len;
  }
  return mrpc_frame_encode(out, &g);
}

/* Returns the last pair named `key`: rpcx decodes metadata into a Go map,
 * where a repeated key keeps its last value. */
const mrpc_meta_t *mrpc_frame_meta_get(const mrpc_frame_t *f,
                                       const char *key) {
  const mrpc_meta_t *found = NULL;
  size_t n = strlen(key), i;

  for (i = 0; i < f->meta_count; i++) {
    const mrpc_meta_t *m = &f->meta[i];
    if (m->key_len == n && (n == 0 || memcmp(m->key, key, n) == 0))
      found = m;
  }
  return found;
}

/* ---- decoder: buffer management --------------------------------------- */

void mrpc_decoder_init(mrpc_decoder_t *d, const mrpc_limits_t *limits) {
  memset(d, 0, sizeof *d);
  if (limits != NULL)
    d->limits = *limits;
  mrpc_limits_default(&d->limits);
}

void mrpc_decoder_free(mrpc_decoder_t *d) {
  mrpc_buf_free(&d->in);
  mrpc_buf_free(&d->inflate);
  free(d->meta);
  d->meta = NULL;
  d->meta_cap = 0;
  d->pos = 0;
}

void mrpc_decoder_reset(mrpc_decoder_t *d) {
  d->in.len = 0;
  d->pos = 0;
  d->inflate.len = 0;
  d->error = 0;
}

/* Drops the consumed bytes before d->pos. The unconsumed tail is moved to
 * the front only when that is cheap (the tail is no longer than what it
 * frees) or when the buffer would otherwise have to grow to fit `need`. */
static void compact(mrpc_decoder_t *d, size_t need) {
  size_t tail;

  if (d->pos == 0)
    return;
  tail = d->in.len - d->pos;
  if (tail == 0) {
    d->in.len = 0;
    d->pos = 0;
    return;
  }
  if (tail <= d->pos || d->in.cap - d->in.len < need) {
    memmove(d->in.data, d->in.data + d->pos, tail);
    d->in.len = tail;
    d->pos = 0;
  }
}

/* After an error the buffered bytes can never be parsed; drop them so a
 * peer that keeps sending cannot grow our memory. */
static void drop_if_failed(mrpc_decoder_t *d) {
  if (d->error != 0) {
    d->in.len = 0;
    d->pos = 0;
  }
}

/* Always hands out room (even after an error, so a libuv alloc_cb need not
 * special-case it); bytes committed after an error are discarded and
 * next() keeps returning the error. */
int mrpc_decoder_reserve(mrpc_decoder_t *d, size_t suggested, char **p,
                         size_t *n) {
  int rc;

  if (suggested == 0)
    suggested = RESERVE_DEFAULT;
  drop_if_failed(d);
  compact(d, suggested);
  rc = mrpc_buf_reserve(&d->in, suggested);
  if (rc != 0) {
    *p = NULL;
    *n = 0;
    return rc;
  }
  *p = d->in.data + d->in.len;
  *n = d->in.cap - d->in.len;
  return 0;
}

void mrpc_decoder_commit(mrpc_decoder_t *d, size_t n) {
  if (n > d->in.cap - d->in.len)
    n = d->in.cap - d->in.len; /* more than reserve handed out: a bug */
  d->in.len += n;
  drop_if_failed(d);
}

/* Returns the sticky error, if any, without buffering `data`. */
int mrpc_decoder_feed(mrpc_decoder_t *d, const char *data, size_t len) {
  if (d->error != 0) {
    drop_if_failed(d);
    return d->error;
  }
  compact(d, len);
  return mrpc_buf_append(&d->in, data, len);
}

size_t mrpc_decoder_pending(const mrpc_decoder_t *d) {
  return d->in.len - d->pos;
}

/* ---- decoder: parsing one frame --------------------------------------- */

/* A read cursor over [p, end). */
typedef struct {
  const char *p;
  const char *end;
} cursor_t;

static size_t left(const cursor_t *c) {
  return (size_t)(c->end - c->p);
}

/* Takes a uint32 length and that many bytes. MRPC_EPROTO when either runs
 * past the end of the cursor. */
static int take(cursor_t *c, const char **p, size_t *n) {
  uint32_t len;

  if (left(c) < 4)
    return MRPC_EPROTO;
  len = mrpc_get_u32(c->p);
  c->p += 4;
  if (len > left(c))
    return MRPC_EPROTO;
  *p = c->p;
  *n = len;
  c->p += len;
  return 0;
}

/* Makes room for pair number `i` (0-based) in d->meta, growing by doubling
 * up to max_meta_pairs. MRPC_EMETA past the limit. */
static int meta_slot(mrpc_decoder_t *d, size_t i) {
  size_t cap;
  mrpc_meta_t *m;

  if (i >= d->limits.max_meta_pairs)
    return MRPC_EMETA;
  if (i < d->meta_cap)
    return 0;
  cap = d->meta_cap < META_MIN_CAP ? META_MIN_CAP : d->meta_cap * 2;
  if (cap > d->limits.max_meta_pairs)
    cap = d->limits.max_meta_pairs;
  m = realloc(d->meta, cap * sizeof *m);
  if (m == NULL)
    return MRPC_ENOMEM;
  d->meta = m;
  d->meta_cap = cap;
  return 0;
}

/* Splits the metadata block [p, p+n) into pairs in d->meta. */
static int parse_meta(mrpc_decoder_t *d, const char *p, size_t n,
                      mrpc_frame_t *f) {
  cursor_t c = {p, p + n};
  size_t count = 0;
  int rc;

  if (n > d->limits.max_meta_bytes)
    return MRPC_EMETA;
  while (left(&c) > 0) {
    mrpc_meta_t m;
    rc = take(&c, &m.key, &m.key_len);
    if (rc == 0)
      rc = take(&c, &m.val, &m.val_len);
    if (rc == 0)
      rc = meta_slot(d, count);
    if (rc != 0)
      return rc;
    d->meta[count++] = m;
  }
  f->meta = count > 0 ? d->meta : NULL;
  f->meta_count = count;
  return 0;
}

/* Sets f->payload from the raw payload according to the compress bits. */
static int set_payload(mrpc_decoder_t *d, mrpc_frame_t *f) {
  int rc;

  switch (mrpc_frame_compress(f)) {
  case MRPC_COMPRESS_NONE:
    f->payload = f->wire_payload;
    f->payload_len = f->wire_payload_len;
    return 0;
  case MRPC_COMPRESS_GZIP:
    if (d->inflate.cap > INFLATE_KEEP)
      mrpc_buf_free(&d->inflate);
    d->inflate.len = 0;
    rc = mrpc_gzip_decompress(&d->inflate, f->wire_payload,
                              f->wire_payload_len, d->limits.max_decompressed);
    if (rc != 0)
      return rc;
    f->payload = d->inflate.data != NULL ? d->inflate.data : "";
    f->payload_len = d->inflate.len;
    return 0;
  default:
    return MRPC_ECOMPRESS;
  }
}

/* Decodes the whole frame at `p` whose total length field is `total` (all
 * of it is buffered). */
static int parse_frame(mrpc_decoder_t *d, const char *p, size_t total,
                       mrpc_frame_t *f) {
  cursor_t c = {p + MRPC_HEADER_LEN, p + MRPC_HEADER_LEN + total};
  const char *meta;
  size_t meta_len;
  int rc;

  memset(f, 0, sizeof *f);
  f->version = (uint8_t)p[1];
  f->flags = (uint8_t)p[2];
  f->serialize = (uint8_t)p[3];
  f->seq = mrpc_get_u64(p + 4);
  if ((rc = take(&c, &f->path, &f->path_len)) != 0 ||
      (rc = take(&c, &f->method, &f->method_len)) != 0 ||
      (rc = take(&c, &meta, &meta_len)) != 0)
    return rc;
  /* Stricter than rpcx: the payload length field must name exactly the
   * bytes left in the frame. */
  if (left(&c) < 4 || mrpc_get_u32(c.p) != left(&c) - 4)
    return MRPC_EPROTO;
  f->wire_payload = c.p + 4;
  f->wire_payload_len = left(&c) - 4;
  if ((rc = parse_meta(d, meta, meta_len, f)) != 0)
    return rc;
  return set_payload(d, f);
}

/* Records a sticky error and returns it. */
static int fail(mrpc_decoder_t *d, int err) {
  d->error = err;
  return err;
}

int mrpc_decoder_next(mrpc_decoder_t *d, mrpc_frame_t *f) {
  const char *p;
  size_t avail;
  uint64_t frame_len;
  uint32_t total;
  int rc;

  if (d->error != 0)
    return d->error;
  avail = d->in.len - d->pos;
  if (avail == 0)
    return 0;
  p = d->in.data + d->pos;
  if ((unsigned char)p[0] != MRPC_MAGIC)
    return fail(d, MRPC_EMAGIC);
  if (avail < MRPC_HEADER_LEN)
    return 0;
  total = mrpc_get_u32(p + 12);
  frame_len = (uint64_t)MRPC_HEADER_LEN + total;
  if (frame_len > d->limits.max_frame)
    return fail(d, MRPC_ETOOBIG);
  if (total < 16) /* not even the four section lengths fit */
    return fail(d, MRPC_EPROTO);
  if (avail < frame_len)
    return 0;
  rc = parse_frame(d, p, total, f);
  if (rc != 0)
    return fail(d, rc);
  d->pos += (size_t)frame_len;
  return 1;
}

int mrpc_frame_decode(mrpc_decoder_t *d, const char *data, size_t len,
                      mrpc_frame_t *f) {
  int rc;

  mrpc_decoder_reset(d);
  rc = mrpc_decoder_feed(d, data, len);
  if (rc == 0)
    rc = mrpc_decoder_next(d, f);
  if (rc == 1 && d->pos != d->in.len)
    rc = fail(d, MRPC_EPROTO); /* trailing bytes after the frame */
  else if (rc == 0)
    rc = fail(d, MRPC_EPROTO); /* a truncated frame */
  return rc == 1 ? 0 : rc;
}
