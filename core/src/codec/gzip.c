/* gzip.c: gzip members in and out of mrpc_buf_t, with zlib.
 *
 * rpcx compresses payloads with Go's compress/gzip, which writes one gzip
 * member (RFC 1952). Compression here writes one member too, at zlib's
 * default level. Decompression accepts any valid single member, streams the
 * output into the caller's buffer in chunks, and stops as soon as the output
 * would pass the caller's cap, so a small "gzip bomb" never makes us allocate
 * more than the cap plus one chunk. The z_stream is always released, on
 * every path. */
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "moonrpc/frame.h"

#define GZIP_WINDOW (15 + 16) /* 32 KiB window, gzip wrapper */
#define GZIP_CHUNK (64u * 1024)

/* zlib counts in uInt; longer inputs are handed over in pieces. */
static uInt clamp_uint(size_t n) {
  return n > UINT_MAX ? UINT_MAX : (uInt)n;
}

int mrpc_gzip_compress(mrpc_buf_t *out, const char *in, size_t len) {
  z_stream zs;
  size_t start = out->len, left = len;
  int rc, zrc = Z_OK;

  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return MRPC_ENOMEM;
  zs.next_in = (Bytef *)(uintptr_t)in;
  while (zrc != Z_STREAM_END) {
    rc = mrpc_buf_reserve(out, GZIP_CHUNK);
    if (rc != 0)
      goto fail;
    if (zs.avail_in == 0 && left > 0) {
      zs.avail_in = clamp_uint(left);
      left -= zs.avail_in;
    }
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = GZIP_CHUNK;
    zrc = deflate(&zs, left == 0 ? Z_FINISH : Z_NO_FLUSH);
    out->len += GZIP_CHUNK - zs.avail_out;
    if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR) {
      rc = MRPC_ENOMEM; /* deflate fails only on memory or misuse */
      goto fail;
    }
  }
  deflateEnd(&zs);
  return 0;

fail:
  deflateEnd(&zs);
  out->len = start;
  return rc;
}

/* Maps a failed inflate() to our code. */
static int inflate_error(int zrc) {
  return zrc == Z_MEM_ERROR ? MRPC_ENOMEM : MRPC_EGZIP;
}

int mrpc_gzip_decompress(mrpc_buf_t *out, const char *in, size_t len,
                         size_t max_out) {
  z_stream zs;
  size_t start = out->len, left = len, produced = 0, room;
  int rc = 0, zrc = Z_OK;

  memset(&zs, 0, sizeof zs);
  if (inflateInit2(&zs, GZIP_WINDOW) != Z_OK)
    return MRPC_ENOMEM;
  zs.next_in = (Bytef *)(uintptr_t)in;
  for (;;) {
    if (zs.avail_in == 0 && left > 0) {
      zs.avail_in = clamp_uint(left);
      left -= zs.avail_in;
    }
    /* Offer at most one byte past the cap: producing it proves a bomb. */
    room = max_out - produced < GZIP_CHUNK ? max_out - produced + 1
                                           : GZIP_CHUNK;
    rc = mrpc_buf_reserve(out, room);
    if (rc != 0)
      break;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = (uInt)room;
    zrc = inflate(&zs, Z_NO_FLUSH);
    out->len += room - zs.avail_out;
    produced += room - zs.avail_out;
    if (produced > max_out) {
      rc = MRPC_EBOMB;
      break;
    }
    if (zrc == Z_STREAM_END) {
      /* One member only: bytes after it are not part of any frame we know. */
      rc = (zs.avail_in != 0 || left != 0) ? MRPC_EGZIP : 0;
      break;
    }
    if (zrc == Z_BUF_ERROR && zs.avail_in == 0 && left == 0) {
      rc = MRPC_EGZIP; /* the input ended before the member did */
      break;
    }
    if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
      rc = inflate_error(zrc);
      break;
    }
  }
  inflateEnd(&zs);
  if (rc != 0)
    out->len = start;
  return rc;
}
