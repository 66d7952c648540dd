/* test_limits.c: the decoder's named limits and its protocol errors.
 *
 * One test per limit or malformation: each feeds a hostile frame, checks
 * the exact MRPC_E* code, and (under the sanitizer build) that the decoder
 * neither reads past what it was given nor leaks. Also covers truncated
 * input, custom and default limits, sticky errors, and error names. No
 * vectors are needed; argv is ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <zlib.h>

#include "moonrpc/frame.h"

/* ---- a tiny test harness ---------------------------------------------- */

#include "check.h"

/* ---- frame builders --------------------------------------------------- */

/* A plain request frame with the given flags, metadata and payload. */
static void build(mrpc_buf_t *out, uint8_t flags, const mrpc_meta_t *meta,
                  size_t meta_count, const char *pay, size_t pay_len) {
  mrpc_frame_t f;

  memset(&f, 0, sizeof f);
  f.flags = flags;
  f.serialize = MRPC_SERIALIZE_MSGPACK << 4;
  f.seq = 1;
  f.path = "Arith";
  f.path_len = 5;
  f.method = "Mul";
  f.method_len = 3;
  f.meta = meta;
  f.meta_count = meta_count;
  f.payload = pay;
  f.payload_len = pay_len;
  out->len = 0;
  CHECK_EQ_INT(mrpc_frame_encode(out, &f), 0);
}

/* Offsets in a frame made by build() with no metadata. */
#define OFF_TOTAL 12
#define OFF_META (16 + 4 + 5 + 4 + 3) /* the metadata length field */
#define OFF_PAYLEN (OFF_META + 4)     /* with an empty metadata block */

static void put32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24);
  p[1] = (char)(v >> 16);
  p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

/* Feeds `n` bytes to a fresh decoder with `limits` and returns next(). */
static int decode_with(const mrpc_limits_t *limits, const char *p, size_t n) {
  mrpc_decoder_t d;
  mrpc_frame_t f;
  int rc;

  mrpc_decoder_init(&d, limits);
  rc = mrpc_decoder_feed(&d, p, n);
  if (rc == 0)
    rc = mrpc_decoder_next(&d, &f);
  mrpc_decoder_free(&d);
  return rc;
}

static int decode(const char *p, size_t n) {
  return decode_with(NULL, p, n);
}

/* ---- framing ---------------------------------------------------------- */

static void test_magic(void) {
  mrpc_buf_t b = {0};

  CHECK_EQ_INT(decode("\x09", 1), MRPC_EMAGIC); /* one byte is enough */
  CHECK_EQ_INT(decode("GET / HTTP/1.1\r\n\r\n", 18), MRPC_EMAGIC);
  build(&b, 0, NULL, 0, "x", 1);
  CHECK_EQ_INT(decode(b.data, b.len), 1);
  b.data[0] = 0x07;
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EMAGIC);
  mrpc_buf_free(&b);
  report("wrong magic -> EMAGIC");
}

static void test_too_big_header_only(void) {
  char head[16] = {MRPC_MAGIC, 0, 0, 0x30};
  mrpc_limits_t small = {.max_frame = 1000};

  put32(head + 12, MRPC_DEFAULT_MAX_FRAME - 16 + 1);
  CHECK_EQ_INT(decode(head, 16), MRPC_ETOOBIG);
  CHECK_EQ_INT(decode(head, 15), 0); /* not decided before 16 bytes */
  put32(head + 12, 0xFFFFFFFFu);       /* 16 + total overflows 32 bits */
  CHECK_EQ_INT(decode(head, 16), MRPC_ETOOBIG);
  put32(head + 12, 1000 - 16 + 1);
  CHECK_EQ_INT(decode_with(&small, head, 16), MRPC_ETOOBIG);
  put32(head + 12, 1000 - 16);
  CHECK_EQ_INT(decode_with(&small, head, 16), 0); /* fits: wait for it */
  report("total length past max_frame -> ETOOBIG after 16 header bytes");
}

/* A frame of exactly `max` bytes decodes; one byte more is refused. */
static void at_max_frame(const mrpc_limits_t *limits, uint32_t max) {
  size_t pay_len = max - (16 + 4 + 5 + 4 + 3 + 4 + 4);
  char *pay = calloc(1, pay_len + 1);
  mrpc_buf_t b = {0};

  build(&b, 0, NULL, 0, pay, pay_len);
  CHECK_EQ_INT(b.len, max);
  CHECK_EQ_INT(decode_with(limits, b.data, b.len), 1);
  build(&b, 0, NULL, 0, pay, pay_len + 1);
  CHECK_EQ_INT(decode_with(limits, b.data, b.len), MRPC_ETOOBIG);
  mrpc_buf_free(&b);
  free(pay);
}

static void test_exactly_max_frame(void) {
  mrpc_limits_t small = {.max_frame = 4096};

  at_max_frame(&small, 4096);
  at_max_frame(NULL, MRPC_DEFAULT_MAX_FRAME);
  report("a frame exactly max_frame long is accepted");
}

static void test_total_too_small(void) {
  char head[16] = {MRPC_MAGIC, 0, 0, 0x30};

  put32(head + 12, 15); /* the four section lengths need 16 */
  CHECK_EQ_INT(decode(head, 16), MRPC_EPROTO);
  report("total length too small for four sections -> EPROTO");
}

static void test_section_past_frame(void) {
  mrpc_buf_t b = {0};

  build(&b, 0, NULL, 0, "abc", 3);
  put32(b.data + OFF_META, 100); /* metadata block past the frame */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  build(&b, 0, NULL, 0, "abc", 3);
  put32(b.data + 16, 0xFFFFFFF0u); /* service path past the frame */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  build(&b, 0, NULL, 0, "abc", 3);
  put32(b.data + 16 + 4 + 5, 1000); /* method past the frame */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  mrpc_buf_free(&b);
  report("metadata (or any section) length past the frame -> EPROTO");
}

static void test_payload_len_mismatch(void) {
  mrpc_buf_t b = {0};

  build(&b, 0, NULL, 0, "1234567", 7);
  CHECK_EQ_INT(decode(b.data, b.len), 1);
  put32(b.data + OFF_PAYLEN, 6); /* a byte left over after the payload */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  put32(b.data + OFF_PAYLEN, 8);
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  put32(b.data + OFF_PAYLEN, 0); /* rpcx would serve these; we do not */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  put32(b.data + OFF_PAYLEN, 999);
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  mrpc_buf_free(&b);
  report("payload length field != bytes left -> EPROTO");
}

static void test_truncated(void) {
  mrpc_buf_t b = {0};
  mrpc_decoder_t d;
  mrpc_frame_t f;
  size_t i;

  build(&b, 0, NULL, 0, "1234567", 7);
  mrpc_decoder_init(&d, NULL);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), 0);
  CHECK_EQ_INT(mrpc_decoder_pending(&d), 0);
  for (i = 0; i + 1 < b.len; i++) {
    CHECK_EQ_INT(mrpc_decoder_feed(&d, b.data + i, 1), 0);
    CHECK_EQ_INT(mrpc_decoder_next(&d, &f), 0);
    CHECK_EQ_INT(mrpc_decoder_pending(&d), i + 1);
  }
  CHECK_EQ_INT(mrpc_decoder_feed(&d, b.data + i, 1), 0);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), 1);
  CHECK_EQ_INT(mrpc_decoder_pending(&d), 0);
  CHECK_EQ_INT(mrpc_frame_decode(&d, b.data, b.len - 1, &f), MRPC_EPROTO);
  mrpc_decoder_free(&d);
  mrpc_buf_free(&b);
  report("a truncated frame needs more bytes; pending counts them");
}

/* ---- metadata --------------------------------------------------------- */

static void test_meta_pair_past_block(void) {
  mrpc_meta_t m = {"key", 3, "value", 5};
  mrpc_buf_t b = {0};

  build(&b, 0, &m, 1, "x", 1);
  CHECK_EQ_INT(decode(b.data, b.len), 1);
  put32(b.data + OFF_META + 4, 100); /* key length past the block */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  build(&b, 0, &m, 1, "x", 1);
  put32(b.data + OFF_META + 4 + 4 + 3, 6); /* value one byte too long */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  build(&b, 0, &m, 1, "x", 1);
  put32(b.data + OFF_META, 4 + 3 + 2); /* block ends inside a length */
  put32(b.data + OFF_META + 4 + 9, 8); /* keep the payload field right */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EPROTO);
  mrpc_buf_free(&b);
  report("a metadata pair past the block -> EPROTO");
}

/* Encodes `n` pairs ("k", "v") and decodes with `limits`. */
static int decode_pairs(const mrpc_limits_t *limits, size_t n) {
  mrpc_meta_t *m = calloc(n, sizeof *m);
  mrpc_buf_t b = {0};
  size_t i;
  int rc;

  for (i = 0; i < n; i++) {
    m[i].key = "k";
    m[i].key_len = 1;
    m[i].val = "v";
    m[i].val_len = 1;
  }
  build(&b, 0, m, n, "x", 1);
  rc = decode_with(limits, b.data, b.len);
  mrpc_buf_free(&b);
  free(m);
  return rc;
}

static void test_meta_pairs(void) {
  CHECK_EQ_INT(decode_pairs(NULL, MRPC_DEFAULT_MAX_META_PAIRS), 1);
  CHECK_EQ_INT(decode_pairs(NULL, MRPC_DEFAULT_MAX_META_PAIRS + 1),
               MRPC_EMETA);
  CHECK_EQ_INT(decode_pairs(NULL, 1000), MRPC_EMETA);
  report("more than max_meta_pairs pairs -> EMETA");
}

/* One pair whose block is exactly `block` bytes, decoded with `limits`. */
static int decode_meta_bytes(const mrpc_limits_t *limits, size_t block) {
  size_t val_len = block - 8 - 1;
  char *val = calloc(1, val_len + 1);
  mrpc_meta_t m = {"k", 1, val, val_len};
  mrpc_buf_t b = {0};
  int rc;

  build(&b, 0, &m, 1, "x", 1);
  rc = decode_with(limits, b.data, b.len);
  mrpc_buf_free(&b);
  free(val);
  return rc;
}

static void test_meta_bytes(void) {
  CHECK_EQ_INT(decode_meta_bytes(NULL, MRPC_DEFAULT_MAX_META_BYTES), 1);
  CHECK_EQ_INT(decode_meta_bytes(NULL, MRPC_DEFAULT_MAX_META_BYTES + 1),
               MRPC_EMETA);
  report("metadata block above max_meta_bytes -> EMETA");
}

/* ---- compression ------------------------------------------------------ */

static void test_compress_unknown(void) {
  mrpc_buf_t b = {0};
  int t;

  for (t = 2; t <= 7; t++) {
    build(&b, (uint8_t)(t << 2), NULL, 0, "1234567", 7);
    CHECK_EQ_INT(decode(b.data, b.len), MRPC_ECOMPRESS);
  }
  mrpc_buf_free(&b);
  report("unknown compress type (2..7) -> ECOMPRESS");
}

/* A gzip member of `n` zero bytes, made with zlib in 1 MiB steps so the
 * test itself never holds the inflated bytes. */
static void gzip_zeros(mrpc_buf_t *out, size_t n) {
  static const unsigned char zeros[1 << 20];
  z_stream zs;
  int zrc = Z_OK;

  memset(&zs, 0, sizeof zs);
  CHECK_EQ_INT(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8,
                            Z_DEFAULT_STRATEGY), Z_OK);
  while (zrc != Z_STREAM_END) {
    if (zs.avail_in == 0 && n > 0) {
      zs.next_in = (Bytef *)zeros;
      zs.avail_in = n < sizeof zeros ? (uInt)n : (uInt)sizeof zeros;
      n -= zs.avail_in;
    }
    if (mrpc_buf_reserve(out, 65536) != 0)
      break;
    zs.next_out = (Bytef *)out->data + out->len;
    zs.avail_out = 65536;
    zrc = deflate(&zs, n == 0 ? Z_FINISH : Z_NO_FLUSH);
    out->len += 65536 - zs.avail_out;
    CHECK(zrc == Z_OK || zrc == Z_STREAM_END || zrc == Z_BUF_ERROR);
    if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
      break;
  }
  deflateEnd(&zs);
}

static void test_gzip_bomb(void) {
  mrpc_buf_t z = {0}, b = {0}, out = {0};
  mrpc_limits_t small = {.max_decompressed = 1000};
  mrpc_decoder_t d;
  mrpc_frame_t f;

  gzip_zeros(&z, (size_t)64 << 20);
  CHECK(z.len < 200 * 1024);
  build(&b, MRPC_COMPRESS_GZIP << 2, NULL, 0, z.data, z.len);
  mrpc_decoder_init(&d, NULL);
  CHECK_EQ_INT(mrpc_decoder_feed(&d, b.data, b.len), 0);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), MRPC_EBOMB);
  /* Inflating stopped at the cap; it did not hold 64 MiB. */
  CHECK(d.inflate.cap <= 2 * (size_t)MRPC_DEFAULT_MAX_DECOMPRESSED + 65536);
  mrpc_decoder_free(&d);

  /* The cap is exact: max_out bytes pass, one fewer is a bomb. */
  mrpc_buf_free(&z);
  gzip_zeros(&z, 1000);
  CHECK_EQ_INT(mrpc_gzip_decompress(&out, z.data, z.len, 1000), 0);
  CHECK_EQ_INT(out.len, 1000);
  CHECK_EQ_INT(mrpc_gzip_decompress(&out, z.data, z.len, 999), MRPC_EBOMB);
  CHECK_EQ_INT(out.len, 1000); /* a failed call appends nothing */
  build(&b, MRPC_COMPRESS_GZIP << 2, NULL, 0, z.data, z.len);
  CHECK_EQ_INT(decode_with(&small, b.data, b.len), 1);
  mrpc_buf_free(&z);
  gzip_zeros(&z, 1001);
  build(&b, MRPC_COMPRESS_GZIP << 2, NULL, 0, z.data, z.len);
  CHECK_EQ_INT(decode_with(&small, b.data, b.len), MRPC_EBOMB);
  mrpc_buf_free(&z);
  mrpc_buf_free(&b);
  mrpc_buf_free(&out);
  report("gzip bomb (64 MiB of zeros) -> EBOMB at max_decompressed");
}

static void test_gzip_corrupt(void) {
  static char text[3000];
  mrpc_buf_t z = {0}, b = {0}, out = {0};
  size_t i;

  for (i = 0; i < sizeof text; i++)
    text[i] = (char)('a' + (i * 7919) % 26);
  CHECK_EQ_INT(mrpc_gzip_compress(&z, text, sizeof text), 0);
  build(&b, MRPC_COMPRESS_GZIP << 2, NULL, 0, z.data, z.len);
  CHECK_EQ_INT(decode(b.data, b.len), 1);
  b.data[b.len - 8] ^= 0x55; /* the CRC32 */
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EGZIP);
  build(&b, MRPC_COMPRESS_GZIP << 2, NULL, 0, z.data, z.len / 2);
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EGZIP); /* truncated member */
  build(&b, MRPC_COMPRESS_GZIP << 2, NULL, 0, "not gzip", 8);
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EGZIP);
  build(&b, MRPC_COMPRESS_GZIP << 2, NULL, 0, "", 0);
  CHECK_EQ_INT(decode(b.data, b.len), MRPC_EGZIP);
  z.data[12] ^= 0xFF; /* inside the deflate data */
  CHECK_EQ_INT(mrpc_gzip_decompress(&out, z.data, z.len, 1 << 20),
               MRPC_EGZIP);
  CHECK_EQ_INT(out.len, 0);
  mrpc_buf_free(&z);
  mrpc_buf_free(&b);
  mrpc_buf_free(&out);
  report("corrupt or truncated gzip -> EGZIP");
}

/* ---- limits and stickiness -------------------------------------------- */

static void test_custom_limits(void) {
  mrpc_limits_t l = {.max_frame = 200, .max_meta_pairs = 2,
                     .max_meta_bytes = 40};
  mrpc_meta_t m[3] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}, {"c", 1, "3", 1}};
  mrpc_meta_t big = {"k", 1, "0123456789012345678901234567890123", 34};
  mrpc_buf_t b = {0};
  char pay[200] = {0};

  build(&b, 0, m, 2, "x", 1);
  CHECK_EQ_INT(decode_with(&l, b.data, b.len), 1);
  build(&b, 0, m, 3, "x", 1);
  CHECK_EQ_INT(decode_with(&l, b.data, b.len), MRPC_EMETA);
  CHECK_EQ_INT(decode(b.data, b.len), 1); /* fine under the defaults */
  build(&b, 0, &big, 1, "x", 1);
  CHECK_EQ_INT(decode_with(&l, b.data, b.len), MRPC_EMETA);
  CHECK_EQ_INT(decode(b.data, b.len), 1);
  build(&b, 0, NULL, 0, pay, sizeof pay);
  CHECK_EQ_INT(decode_with(&l, b.data, 16), MRPC_ETOOBIG);
  CHECK_EQ_INT(decode(b.data, b.len), 1);
  mrpc_buf_free(&b);
  report("custom limits in mrpc_decoder_init are honoured");
}

static void test_default_limits(void) {
  mrpc_limits_t l = {.max_frame = 1234};
  mrpc_decoder_t d;

  mrpc_decoder_init(&d, &l);
  CHECK_EQ_INT(d.limits.max_frame, 1234);
  CHECK_EQ_INT(d.limits.max_meta_pairs, MRPC_DEFAULT_MAX_META_PAIRS);
  CHECK_EQ_INT(d.limits.max_meta_bytes, MRPC_DEFAULT_MAX_META_BYTES);
  CHECK_EQ_INT(d.limits.max_decompressed, MRPC_DEFAULT_MAX_DECOMPRESSED);
  CHECK_EQ_INT(d.limits.max_depth, MRPC_DEFAULT_MAX_DEPTH);
  CHECK_EQ_INT(d.limits.max_conns, MRPC_DEFAULT_MAX_CONNS);
  CHECK_EQ_INT(d.limits.max_write_queue, MRPC_DEFAULT_MAX_WRITE_QUEUE);
  mrpc_decoder_free(&d);
  mrpc_decoder_init(&d, NULL);
  CHECK_EQ_INT(d.limits.max_frame, MRPC_DEFAULT_MAX_FRAME);
  CHECK_EQ_INT(d.limits.max_meta_pairs, MRPC_DEFAULT_MAX_META_PAIRS);
  mrpc_decoder_free(&d);
  report("zero limit fields take their defaults");
}

static void test_sticky(void) {
  mrpc_buf_t b = {0};
  mrpc_decoder_t d;
  mrpc_frame_t f;
  char *p;
  size_t n;

  build(&b, 0, NULL, 0, "x", 1);
  mrpc_decoder_init(&d, NULL);
  CHECK_EQ_INT(mrpc_decoder_feed(&d, "\x01", 1), 0);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), MRPC_EMAGIC);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), MRPC_EMAGIC);
  CHECK_EQ_INT(mrpc_decoder_feed(&d, b.data, b.len), MRPC_EMAGIC);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), MRPC_EMAGIC);
  /* reserve still hands out room (a libuv alloc_cb never fails on it), but
   * what is committed after the error is dropped. */
  CHECK_EQ_INT(mrpc_decoder_reserve(&d, 100, &p, &n), 0);
  CHECK(n >= 100);
  memcpy(p, b.data, b.len);
  mrpc_decoder_commit(&d, b.len);
  CHECK_EQ_INT(mrpc_decoder_pending(&d), 0);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), MRPC_EMAGIC);
  mrpc_decoder_reset(&d);
  CHECK_EQ_INT(mrpc_decoder_feed(&d, b.data, b.len), 0);
  CHECK_EQ_INT(mrpc_decoder_next(&d, &f), 1);
  mrpc_decoder_free(&d);
  mrpc_buf_free(&b);
  report("errors are sticky until reset");
}

static void test_reserve_size(void) {
  mrpc_decoder_t d;
  mrpc_frame_t f;
  mrpc_buf_t b = {0};
  char *p;
  size_t n, i;

  build(&b, 0, NULL, 0, "x", 1);
  mrpc_decoder_init(&d, NULL);
  for (i = 0; i < 3000; i++) { /* many frames through one buffer */
    CHECK_EQ_INT(mrpc_decoder_reserve(&d, 65536, &p, &n), 0);
    CHECK(n >= 65536);
    memcpy(p, b.data, b.len);
    mrpc_decoder_commit(&d, b.len);
    CHECK_EQ_INT(mrpc_decoder_next(&d, &f), 1);
    CHECK(f.seq == 1 && f.payload_len == 1 && f.payload[0] == 'x');
  }
  CHECK(d.in.cap < 2 * 65536 + 4096); /* consumed bytes were reclaimed */
  mrpc_decoder_free(&d);
  mrpc_buf_free(&b);
  report("reserve gives at least the suggested room and reuses it");
}

static void test_err_names(void) {
  CHECK(strcmp(mrpc_err_name(MRPC_EPROTO), "EPROTO") == 0);
  CHECK(strcmp(mrpc_strerror(MRPC_EPROTO), "malformed frame") == 0);
  CHECK(strcmp(mrpc_err_name(MRPC_EBOMB), "EBOMB") == 0);
  CHECK(strcmp(mrpc_err_name(MRPC_ENOSERVER), "ENOSERVER") == 0);
  CHECK(strcmp(mrpc_strerror(MRPC_ETOOBIG), "frame larger than max_frame") == 0);
#define XX(name, code, msg)                                \
  CHECK(strcmp(mrpc_err_name(code), #name) == 0);          \
  CHECK(strcmp(mrpc_strerror(code), msg) == 0);
  MRPC_ERRNO_MAP(XX)
#undef XX
  CHECK(strcmp(mrpc_err_name(UV_ECONNREFUSED), "ECONNREFUSED") == 0);
  CHECK(strcmp(mrpc_strerror(UV_ECONNREFUSED),
               uv_strerror(UV_ECONNREFUSED)) == 0);
  CHECK(strcmp(mrpc_err_name(UV_EOF), "EOF") == 0);
  CHECK(mrpc_err_name(-29999) != NULL && mrpc_strerror(-29999) != NULL);
  CHECK(mrpc_err_name(0) != NULL && mrpc_strerror(0) != NULL);
  report("mrpc_err_name/mrpc_strerror for our codes and libuv's");
}

int main(int argc, char **argv) {
  (void)argc; /* no vectors needed */
  (void)argv;
  test_magic();
  test_too_big_header_only();
  test_exactly_max_frame();
  test_total_too_small();
  test_section_past_frame();
  test_payload_len_mismatch();
  test_truncated();
  test_meta_pair_past_block();
  test_meta_pairs();
  test_meta_bytes();
  test_compress_unknown();
  test_gzip_bomb();
  test_gzip_corrupt();
  test_custom_limits();
  test_default_limits();
  test_sticky();
  test_reserve_size();
  test_err_names();
  return finish();
}
