/* fuzz_frame: the rpcx frame decoder (moonrpc/frame.h, codec/frame.c).
 *
 * Input: byte 0 seeds the chunking, byte 1 picks the limits (the defaults
 * or small ones, so that every limit's refusal is reached), the rest is the
 * stream. The stream is fed in chunks of 1 byte to 4 KiB, alternately
 * through mrpc_decoder_feed and reserve/commit, taking every frame ready
 * after each chunk. Properties: no crash, leak or UB; an error is sticky;
 * every decoded frame re-encodes (mrpc_frame_encode, the payload as sent)
 * to bytes that mrpc_frame_decode reads back equal, field by field; and the
 * same stream fed whole gives the same frames and the same end. */
#include "fuzz_common.h"
#include "moonrpc/frame.h"

/* A digest of one frame, to compare the chunked and the whole decoding. */
static uint64_t frame_digest(const mrpc_frame_t *f) {
  uint64_t h = 1469598103934665603ull;
#define MIX(p, n)                                                            \
  do {                                                                       \
    const unsigned char *q_ = (const unsigned char *)(p);                    \
    for (size_t i_ = 0; i_ < (n); i_++) h = (h ^ q_[i_]) * 1099511628211ull;  \
    h = (h ^ (n)) * 1099511628211ull;                                        \
  } while (0)
  MIX(&f->flags, 1);
  MIX(&f->serialize, 1);
  MIX(&f->version, 1);
  MIX(&f->seq, 8);
  MIX(f->path, f->path_len);
  MIX(f->method, f->method_len);
  for (size_t i = 0; i < f->meta_count; i++) {
    MIX(f->meta[i].key, f->meta[i].key_len);
    MIX(f->meta[i].val, f->meta[i].val_len);
  }
  MIX(f->payload, f->payload_len);
  MIX(f->wire_payload, f->wire_payload_len);
#undef MIX
  return h;
}

static int same(const char *a, size_t an, const char *b, size_t bn) {
  return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* Re-encodes f and decodes the bytes again with the same limits. */
static void round_trip(const mrpc_frame_t *f, const mrpc_limits_t *lim) {
  mrpc_buf_t out = {0};
  mrpc_decoder_t d;
  mrpc_frame_t g;
  mrpc_frame_t e = *f;
  int rc;
  FUZZ_CHECK(mrpc_frame_encode(&out, &e) == 0);
  mrpc_decoder_init(&d, lim);
  rc = mrpc_frame_decode(&d, out.data, out.len, &g);
  if (rc != 0) fprintf(stderr, "round trip: %d\n", rc);
  FUZZ_CHECK(rc == 0);
  FUZZ_CHECK(g.flags == f->flags && g.serialize == f->serialize && g.seq == f->seq &&
             g.version == f->version);
  FUZZ_CHECK(same(g.path, g.path_len, f->path, f->path_len));
  FUZZ_CHECK(same(g.method, g.method_len, f->method, f->method_len));
  FUZZ_CHECK(g.meta_count == f->meta_count);
  for (size_t i = 0; i < g.meta_count; i++) {
    FUZZ_CHECK(same(g.meta[i].key, g.meta[i].key_len, f->meta[i].key, f->meta[i].key_len));
    FUZZ_CHECK(same(g.meta[i].val, g.meta[i].val_len, f->meta[i].val, f->meta[i].val_len));
  }
  FUZZ_CHECK(same(g.payload, g.payload_len, f->payload, f->payload_len));
  FUZZ_CHECK(same(g.wire_payload, g.wire_payload_len, f->wire_payload, f->wire_payload_len));
  FUZZ_CHECK(frame_digest(&g) == frame_digest(f));
  mrpc_decoder_free(&d);
  mrpc_buf_free(&out);
}

#define MAX_FRAMES 4096

/* Takes every ready frame; returns the decoder's state (0 or an error). */
static int drain(mrpc_decoder_t *d, const mrpc_limits_t *lim, uint64_t *digests, size_t *nd,
                 int check) {
  mrpc_frame_t f;
  int rc;
  while ((rc = mrpc_decoder_next(d, &f)) == 1) {
    if (check) round_trip(&f, lim);
    if (*nd < MAX_FRAMES) digests[(*nd)++] = frame_digest(&f);
  }
  if (rc < 0) FUZZ_CHECK(mrpc_decoder_next(d, &f) == rc); /* sticky */
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint64_t da[MAX_FRAMES], db[MAX_FRAMES];
  mrpc_limits_t lim;
  mrpc_decoder_t d;
  fuzz_rng_t rng;
  size_t na = 0, nb = 0, off = 0;
  int rc = 0, rcw, k = 0;
  if (size < 2) return 0;
  fuzz_rng_init(&rng, data[0]);
  memset(&lim, 0, sizeof lim);
  if (data[1] & 1) { /* small limits, each reachable by a short input */
    lim.max_frame = 16 + (data[1] >> 1) * 8;       /* 16..1032 */
    lim.max_meta_pairs = 1 + (data[1] >> 4);       /* 1..16 */
    lim.max_meta_bytes = 8 + (data[1] >> 2) * 4;   /* 8..260 */
    lim.max_decompressed = 1 + (data[1] >> 1) * 16; /* 1..2033 */
  }
  data += 2, size -= 2;

  mrpc_decoder_init(&d, &lim);
  mrpc_limits_default(&lim); /* as the decoder sees them */
  while (off < size && rc >= 0) {
    size_t n = fuzz_chunk(&rng, size - off);
    if (k++ & 1) {
      char *p;
      size_t cap;
      FUZZ_CHECK(mrpc_decoder_reserve(&d, n, &p, &cap) == 0);
      FUZZ_CHECK(cap >= n);
      memcpy(p, data + off, n);
      mrpc_decoder_commit(&d, n);
    } else {
      FUZZ_CHECK(mrpc_decoder_feed(&d, (const char *)data + off, n) == 0);
    }
    off += n;
    rc = drain(&d, &lim, da, &na, 1);
  }
  if (rc >= 0) FUZZ_CHECK(mrpc_decoder_pending(&d) <= size);
  mrpc_decoder_free(&d);

  /* The same bytes in one piece (a copy of exactly their size). */
  mrpc_decoder_init(&d, &lim);
  {
    char *whole = fuzz_dup(data, size);
    FUZZ_CHECK(mrpc_decoder_feed(&d, whole, size) == 0);
    free(whole);
  }
  rcw = drain(&d, &lim, db, &nb, 0);
  mrpc_decoder_free(&d);
  /* A chunked stream stops at its first error; the whole one too, at the
   * same frame, unless the chunked one stopped early on a header alone. */
  if (rc >= 0 && rcw >= 0) {
    FUZZ_CHECK(na == nb);
    for (size_t i = 0; i < na; i++) FUZZ_CHECK(da[i] == db[i]);
  } else {
    FUZZ_CHECK(rc < 0 && rcw < 0);
    FUZZ_CHECK(rc == rcw);
    FUZZ_CHECK(na == nb);
  }
  return 0;
}
