/* test_frame.c: the frame codec against the rpcx wire vectors.
 *
 * Every vector captured from the real Go rpcx (../shared/rpcx-vectors) is
 * decoded and each field rpcx's own decoder recorded is compared; the frame
 * is then re-encoded and must give back the captured bytes. The streaming
 * decoder must return all vectors in order whether they arrive in one read
 * or one byte at a time. The gzip helpers and rpcx's compression rule are
 * checked as well.
 *
 * Usage: test_frame VECTORS_DIR. Exits 77 (skipped) when the vectors are
 * not there, 0 when every test passes, 1 otherwise. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moonrpc/frame.h"

/* ---- a tiny test harness ---------------------------------------------- */

#include "check.h"

/* ---- helpers ---------------------------------------------------------- */

typedef struct {
  char *p;
  size_t n;
} bytes_t;

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decodes a hex string; a malformed one fails the current test. */
static bytes_t unhex(const char *s) {
  size_t len = s != NULL ? strlen(s) : 0, i;
  bytes_t b = {malloc(len / 2 + 1), len / 2};

  if (s == NULL || len % 2 != 0) {
    CHECK(!"bad hex string");
    b.n = 0;
    return b;
  }
  for (i = 0; i < b.n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    CHECK(hi >= 0 && lo >= 0);
    b.p[i] = (char)((hi << 4) | (lo & 15));
  }
  return b;
}

static int mem_is(const void *p, size_t n, const bytes_t *want) {
  return n == want->n && (n == 0 || memcmp(p, want->p, n) == 0);
}

static int str_is(const char *p, size_t n, const char *want) {
  return want != NULL && n == strlen(want) && (n == 0 || memcmp(p, want, n) == 0);
}

static char *read_file(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  char *buf = NULL;
  long size;

  if (fp == NULL)
    return NULL;
  if (fseek(fp, 0, SEEK_END) == 0 && (size = ftell(fp)) >= 0 &&
      fseek(fp, 0, SEEK_SET) == 0) {
    buf = malloc((size_t)size + 1);
    if (buf != NULL && fread(buf, 1, (size_t)size, fp) != (size_t)size) {
      free(buf);
      buf = NULL;
    }
    if (buf != NULL) {
      buf[size] = '\0';
      *len = (size_t)size;
    }
  }
  fclose(fp);
  return buf;
}

static const cJSON *field(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

  if (v == NULL)
    fprintf(stderr, "    missing field %s\n", name);
  CHECK(v != NULL);
  return v;
}

static long long num(const cJSON *obj, const char *name) {
  const cJSON *v = field(obj, name);

  return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

static const char *str(const cJSON *obj, const char *name) {
  const cJSON *v = field(obj, name);

  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int boolean(const cJSON *obj, const char *name) {
  return cJSON_IsTrue(field(obj, name));
}

/* "0x84" -> 0x84 */
static long hexbyte(const char *s) {
  return s != NULL ? strtol(s, NULL, 16) : -1;
}

/* ---- per-vector checks ------------------------------------------------ */

/* Compares the decoded metadata with the recorded map and wire order. */
static void check_meta(const mrpc_frame_t *f, const cJSON *fl) {
  const cJSON *map = field(fl, "metadata");
  const cJSON *order = field(fl, "metadata_wire_order");
  const cJSON *it;
  size_t i = 0;

  CHECK_EQ_INT(f->meta_count, cJSON_GetArraySize(map));
  cJSON_ArrayForEach(it, map) {
    const mrpc_meta_t *m = mrpc_frame_meta_get(f, it->string);
    CHECK(m != NULL);
    if (m != NULL)
      CHECK(str_is(m->val, m->val_len, it->valuestring));
  }
  CHECK_EQ_INT(f->meta_count, cJSON_GetArraySize(order));
  cJSON_ArrayForEach(it, order) {
    if (i < f->meta_count)
      CHECK(str_is(f->meta[i].key, f->meta[i].key_len, it->valuestring));
    i++;
  }
}

/* seq may pass 2^53, where cJSON's double loses bits. The exact numbers are
 * read from the JSON text itself: the Nth "seq" key belongs to the Nth
 * vector (only `fields` has that key). */
static unsigned long long *exact_seqs;
static size_t n_exact_seqs;

static void scan_seqs(const char *text) {
  const char *p = text;
  size_t cap = 0;

  while ((p = strstr(p, "\"seq\"")) != NULL) {
    p += 5;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
      p++;
    if (n_exact_seqs == cap) {
      cap = cap ? cap * 2 : 64;
      exact_seqs = realloc(exact_seqs, cap * sizeof *exact_seqs);
    }
    exact_seqs[n_exact_seqs++] = strtoull(p, NULL, 10);
  }
}

/* Checks seq three ways: the exact JSON text, the JSON number (as a
 * double), and the bytes of header_hex. */
static void check_seq(const mrpc_frame_t *f, const cJSON *fl,
                      const bytes_t *wire, size_t index) {
  bytes_t head = unhex(str(fl, "header_hex"));
  const cJSON *seq = field(fl, "seq");

  CHECK_EQ_INT(head.n, 12);
  CHECK(wire->n >= 12 && mem_is(wire->p, 12, &head));
  if (head.n == 12)
    CHECK(mrpc_get_u64(head.p + 4) == f->seq);
  CHECK(cJSON_IsNumber(seq) && seq->valuedouble == (double)f->seq);
  CHECK(index < n_exact_seqs && exact_seqs[index] == f->seq);
  free(head.p);
}

static void check_header(const mrpc_frame_t *f, const cJSON *fl,
                         const bytes_t *wire, size_t index) {
  const char *type = str(fl, "message_type");

  CHECK_EQ_INT(hexbyte(str(fl, "magic")), MRPC_MAGIC);
  CHECK_EQ_INT(f->version, num(fl, "version"));
  CHECK_EQ_INT(f->flags, hexbyte(str(fl, "flags_byte")));
  CHECK(type != NULL && mrpc_frame_is_response(f) ==
                            (strcmp(type, "response") == 0));
  CHECK_EQ_INT(mrpc_frame_is_heartbeat(f), boolean(fl, "heartbeat"));
  CHECK_EQ_INT(mrpc_frame_is_oneway(f), boolean(fl, "oneway"));
  CHECK_EQ_INT(mrpc_frame_compress(f), num(fl, "compress_type"));
  CHECK_EQ_INT(mrpc_frame_status(f), num(fl, "status_type"));
  CHECK_EQ_INT(f->serialize, hexbyte(str(fl, "serialize_byte")));
  CHECK_EQ_INT(mrpc_frame_serialize(f), num(fl, "serialize_type"));
  check_seq(f, fl, wire, index);
  CHECK(wire->n >= 16);
  if (wire->n >= 16) {
    CHECK_EQ_INT(mrpc_get_u32(wire->p + 12), num(fl, "total_len"));
    CHECK_EQ_INT(wire->n, 16 + num(fl, "total_len"));
  }
}

static void check_body(const mrpc_frame_t *f, const cJSON *fl) {
  bytes_t wire_pay = unhex(str(fl, "payload_wire_hex"));
  bytes_t pay = unhex(str(fl, "payload_hex"));

  CHECK(str_is(f->path, f->path_len, str(fl, "service_path")));
  CHECK(str_is(f->method, f->method_len, str(fl, "service_method")));
  check_meta(f, fl);
  /* Zero-copy: the length field sits just before the raw payload. */
  CHECK_EQ_INT(mrpc_get_u32(f->wire_payload - 4), num(fl, "payload_len_field"));
  CHECK(mem_is(f->wire_payload, f->wire_payload_len, &wire_pay));
  CHECK(mem_is(f->payload, f->payload_len, &pay));
  CHECK_EQ_INT(f->payload_len, num(fl, "payload_len"));
  free(wire_pay.p);
  free(pay.p);
}

/* Re-encodes `f`; the bytes must be `hex` or `hex_other_metadata_order`. */
static void check_reencode(const mrpc_frame_t *f, const cJSON *v,
                           const bytes_t *wire) {
  mrpc_buf_t out = {0};
  const cJSON *other = cJSON_GetObjectItemCaseSensitive(v, "hex_other_metadata_order");
  int ok;

  CHECK_EQ_INT(mrpc_frame_encode(&out, f), 0);
  ok = mem_is(out.data, out.len, wire);
  if (!ok && cJSON_IsString(other)) {
    bytes_t alt = unhex(other->valuestring);
    ok = mem_is(out.data, out.len, &alt);
    free(alt.p);
  }
  CHECK(ok);
  mrpc_buf_free(&out);
}

static void check_bin(const char *dir, const char *name, const bytes_t *wire) {
  char path[4096];
  size_t len = 0;
  char *data;

  snprintf(path, sizeof path, "%s/bin/%s.bin", dir, name);
  data = read_file(path, &len);
  CHECK(data != NULL);
  if (data != NULL)
    CHECK(mem_is(data, len, wire));
  free(data);
}

static void test_vector(const char *dir, const cJSON *v, size_t index) {
  const char *name = str(v, "name");
  const cJSON *fl = field(v, "fields");
  bytes_t wire = unhex(str(v, "hex"));
  mrpc_decoder_t d;
  mrpc_frame_t f;
  char label[256];
  int rc;

  mrpc_decoder_init(&d, NULL);
  CHECK_EQ_INT(wire.n, num(v, "length"));
  rc = mrpc_frame_decode(&d, wire.p, wire.n, &f);
  CHECK_EQ_INT(rc, 0);
  if (rc == 0 && fl != NULL) {
    check_header(&f, fl, &wire, index);
    check_body(&f, fl);
    check_reencode(&f, v, &wire);
  }
  if (name != NULL)
    check_bin(dir, name, &wire);
  mrpc_decoder_free(&d);
  free(wire.p);
  snprintf(label, sizeof label, "vector %s", name != NULL ? name : "?");
  report(label);
}

/* ---- streaming -------------------------------------------------------- */

/* Every vector's bytes, back to back, and where each one starts. */
typedef struct {
  mrpc_buf_t all;
  size_t *start;
  size_t count;
} stream_t;

static void stream_build(stream_t *s, const cJSON *vectors) {
  const cJSON *v;
  size_t i = 0;

  memset(s, 0, sizeof *s);
  s->count = (size_t)cJSON_GetArraySize(vectors);
  s->start = calloc(s->count + 1, sizeof *s->start);
  cJSON_ArrayForEach(v, vectors) {
    bytes_t b = unhex(str(v, "hex"));
    s->start[i++] = s->all.len;
    mrpc_buf_append(&s->all, b.p, b.n);
    free(b.p);
  }
  s->start[i] = s->all.len;
}

static void stream_free(stream_t *s) {
  mrpc_buf_free(&s->all);
  free(s->start);
}

/* Takes every ready frame; each must re-encode to the next vector. */
static void drain(mrpc_decoder_t *d, const stream_t *s, size_t *got) {
  mrpc_frame_t f;
  int rc;

  while ((rc = mrpc_decoder_next(d, &f)) == 1) {
    mrpc_buf_t out = {0};
    CHECK(*got < s->count);
    if (*got < s->count) {
      bytes_t want = {s->all.data + s->start[*got],
                      s->start[*got + 1] - s->start[*got]};
      CHECK_EQ_INT(mrpc_frame_encode(&out, &f), 0);
      CHECK(mem_is(out.data, out.len, &want));
    }
    mrpc_buf_free(&out);
    (*got)++;
  }
  CHECK_EQ_INT(rc, 0);
}

static void test_stream_one_feed(const stream_t *s) {
  mrpc_decoder_t d;
  size_t got = 0;

  mrpc_decoder_init(&d, NULL);
  CHECK_EQ_INT(mrpc_decoder_feed(&d, s->all.data, s->all.len), 0);
  drain(&d, s, &got);
  CHECK_EQ_INT(got, s->count);
  CHECK_EQ_INT(got, 47);
  CHECK_EQ_INT(mrpc_decoder_pending(&d), 0);
  mrpc_decoder_free(&d);
  report("all vectors in one feed come back in order");
}

static void test_stream_bytewise(const stream_t *s) {
  mrpc_decoder_t d;
  size_t got = 0, i;

  mrpc_decoder_init(&d, NULL);
  for (i = 0; i < s->all.len; i++) {
    CHECK_EQ_INT(mrpc_decoder_feed(&d, s->all.data + i, 1), 0);
    drain(&d, s, &got);
  }
  CHECK_EQ_INT(got, s->count);
  CHECK_EQ_INT(mrpc_decoder_pending(&d), 0);
  mrpc_decoder_free(&d);
  report("all vectors fed one byte at a time come back in order");
}

/* The libuv path: reserve a region, write into it, commit, in uneven
 * chunks that split frames at every kind of boundary. */
static void test_stream_reserve_commit(const stream_t *s) {
  mrpc_decoder_t d;
  size_t got = 0, off = 0, step = 1;

  mrpc_decoder_init(&d, NULL);
  while (off < s->all.len) {
    char *p;
    size_t n, k;
    CHECK_EQ_INT(mrpc_decoder_reserve(&d, 65536, &p, &n), 0);
    CHECK(n >= 65536);
    k = s->all.len - off < step ? s->all.len - off : step;
    memcpy(p, s->all.data + off, k);
    mrpc_decoder_commit(&d, k);
    off += k;
    step = step * 7 % 97 + 1;
    drain(&d, s, &got);
  }
  CHECK_EQ_INT(got, s->count);
  mrpc_decoder_free(&d);
  report("reserve/commit in uneven chunks returns every vector");
}

/* ---- gzip ------------------------------------------------------------- */

static const cJSON *find_vector(const cJSON *vectors, const char *name) {
  const cJSON *v;

  cJSON_ArrayForEach(v, vectors) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(v, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
      return v;
  }
  return NULL;
}

static void test_gzip_vector(const cJSON *vectors) {
  const cJSON *v = find_vector(vectors, "gzip_request");
  const cJSON *fl = v != NULL ? field(v, "fields") : NULL;
  bytes_t wire = {NULL, 0}, pay = {NULL, 0};
  mrpc_decoder_t d;
  mrpc_frame_t f;

  CHECK(v != NULL && fl != NULL);
  mrpc_decoder_init(&d, NULL);
  if (fl != NULL) {
    wire = unhex(str(v, "hex"));
    pay = unhex(str(fl, "payload_hex"));
    CHECK_EQ_INT(mrpc_frame_decode(&d, wire.p, wire.n, &f), 0);
    CHECK_EQ_INT(mrpc_frame_compress(&f), MRPC_COMPRESS_GZIP);
    CHECK(mem_is(f.payload, f.payload_len, &pay));
    CHECK(f.payload >= d.inflate.data &&
          f.payload < d.inflate.data + d.inflate.len);
    CHECK(f.wire_payload > d.in.data && f.wire_payload < d.in.data + d.in.len);
    CHECK(f.wire_payload_len < f.payload_len);
  }
  mrpc_decoder_free(&d);
  free(wire.p);
  free(pay.p);
  report("gzip_request inflates to payload_hex");
}

static void fill(char *p, size_t n) {
  size_t i;

  for (i = 0; i < n; i++)
    p[i] = "moonrpc gzip round trip "[i % 24];
}

static void test_gzip_roundtrip(void) {
  static char in[5000];
  mrpc_buf_t z = {0}, back = {0};

  fill(in, sizeof in);
  CHECK_EQ_INT(mrpc_gzip_compress(&z, in, sizeof in), 0);
  CHECK(z.len > 18 && (unsigned char)z.data[0] == 0x1f &&
        (unsigned char)z.data[1] == 0x8b);
  CHECK_EQ_INT(mrpc_gzip_decompress(&back, z.data, z.len, sizeof in), 0);
  CHECK(back.len == sizeof in && memcmp(back.data, in, sizeof in) == 0);
  back.len = 0;
  mrpc_buf_free(&z);
  CHECK_EQ_INT(mrpc_gzip_compress(&z, "", 0), 0);
  CHECK_EQ_INT(mrpc_gzip_decompress(&back, z.data, z.len, 0), 0);
  CHECK_EQ_INT(back.len, 0);
  mrpc_buf_free(&z);
  mrpc_buf_free(&back);
  report("gzip compress/decompress round trip");
}

/* Encodes a payload of `n` bytes with encode_auto and decodes it back. */
static void auto_case(size_t n, int gzip, int want_compressed) {
  static char pay[4096];
  mrpc_frame_t f, g;
  mrpc_buf_t out = {0}, scratch = {0};
  mrpc_decoder_t d;

  fill(pay, sizeof pay);
  memset(&f, 0, sizeof f);
  f.flags = MRPC_COMPRESS_GZIP << 2; /* must be overridden by the rule */
  f.serialize = MRPC_SERIALIZE_NONE << 4;
  f.seq = 42;
  f.path = "Echo";
  f.path_len = 4;
  f.method = "Echo";
  f.method_len = 4;
  f.payload = pay;
  f.payload_len = n;
  mrpc_decoder_init(&d, NULL);
  CHECK_EQ_INT(mrpc_frame_encode_auto(&out, &f, gzip, &scratch), 0);
  CHECK_EQ_INT(mrpc_frame_decode(&d, out.data, out.len, &g), 0);
  CHECK_EQ_INT(mrpc_frame_compress(&g),
               want_compressed ? MRPC_COMPRESS_GZIP : MRPC_COMPRESS_NONE);
  CHECK(g.payload_len == n && memcmp(g.payload, pay, n) == 0);
  if (want_compressed)
    CHECK(g.wire_payload_len < n);
  mrpc_decoder_free(&d);
  mrpc_buf_free(&out);
  mrpc_buf_free(&scratch);
}

static void test_encode_auto(void) {
  auto_case(0, 1, 0);
  auto_case(MRPC_GZIP_THRESHOLD, 1, 0);
  auto_case(MRPC_GZIP_THRESHOLD + 1, 1, 1);
  auto_case(4096, 1, 1);
  auto_case(MRPC_GZIP_THRESHOLD + 1, 0, 0);
  auto_case(4096, 0, 0);
  report("encode_auto gzips only when asked and only above 1024 bytes");
}

/* ---- main ------------------------------------------------------------- */

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "../shared/rpcx-vectors";
  char path[4096];
  size_t len = 0;
  char *text;
  cJSON *vectors;
  const cJSON *v;
  stream_t s;
  size_t index = 0;

  snprintf(path, sizeof path, "%s/vectors.json", dir);
  text = read_file(path, &len);
  if (text == NULL) {
    printf("SKIP: rpcx vectors not found at %s (../shared is not beside "
           "this clone)\n", dir);
    return 77;
  }
  vectors = cJSON_Parse(text);
  scan_seqs(text);
  free(text);
  if (!cJSON_IsArray(vectors)) {
    printf("not ok 1 - parse %s\n0 passed, 1 failed\n", path);
    cJSON_Delete(vectors);
    free(exact_seqs);
    return 1;
  }
  cJSON_ArrayForEach(v, vectors) test_vector(dir, v, index++);
  stream_build(&s, vectors);
  test_stream_one_feed(&s);
  test_stream_bytewise(&s);
  test_stream_reserve_commit(&s);
  stream_free(&s);
  test_gzip_vector(vectors);
  test_gzip_roundtrip();
  test_encode_auto();
  cJSON_Delete(vectors);
  free(exact_seqs);
  return finish();
}
