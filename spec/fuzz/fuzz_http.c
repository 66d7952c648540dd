/* fuzz_http: the gateway's HTTP/1.x request parser
 * (gateway/gateway_http_parse.c, mrpc__gw_http_parse), pure.
 *
 * Input: byte 0 seeds the chunking, byte 1 picks max_header and max_body
 * (small or the gateway's defaults), the rest is what a peer sends: one or
 * more pipelined requests. Each request is parsed whole (the bytes left, in
 * a block of exactly their size), and incrementally over growing prefixes
 * with *scan carried between calls as gateway_http.c does. Properties: no
 * crash, leak or UB; both ways agree on the status, the lengths and the
 * request line; a complete request lies within the bytes given; every
 * header lies within the head; an error status is one the contract names. */
#include "fuzz_common.h"
#include "gateway/gateway_http_parse.h"

static int known_error(int rc) {
  return rc == -400 || rc == -431 || rc == -413 || rc == -501 || rc == -505;
}

static int within(const char *p, size_t n, const char *q, size_t qn) {
  return qn == 0 || (q >= p && q + qn <= p + n);
}

/* Parses p[0..n) one prefix at a time; the last prefix is the whole. */
static int incremental(const char *p, size_t n, fuzz_rng_t *rng, uint32_t mh, uint32_t mb,
                       gw_http_msg_t *m) {
  size_t have = 0;
  gw_http_scan_t scan;
  int rc = 0;
  memset(&scan, 0, sizeof scan);
  while (have < n) {
    char *c;
    have += fuzz_chunk(rng, n - have);
    c = fuzz_dup(p, have);
    rc = mrpc__gw_http_parse(c, have, &scan, mh, mb, m);
    free(c);
    FUZZ_CHECK(scan.head <= have);
    if (rc != 0) return rc;
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static gw_http_msg_t a, b;
  fuzz_rng_t rng;
  uint32_t mh, mb;
  size_t off = 0;
  int nreq = 0;
  if (size < 2) return 0;
  fuzz_rng_init(&rng, data[0]);
  mh = data[1] & 1 ? 8 + (data[1] >> 1) * 4 : 64 * 1024;
  mb = data[1] & 2 ? (data[1] >> 2) * 8 : 4 * 1024 * 1024;
  data += 2, size -= 2;
  while (off < size && nreq++ < 64) {
    const char *rest = (const char *)data + off;
    size_t n = size - off, skip = mrpc__gw_http_blank(rest, n);
    gw_http_scan_t scan;
    char *c;
    int rw, ri;
    FUZZ_CHECK(skip <= n);
    rest += skip, n -= skip, off += skip;
    if (n == 0) break;
    c = fuzz_dup(rest, n);
    memset(&scan, 0, sizeof scan);
    memset(&a, 0, sizeof a);
    rw = mrpc__gw_http_parse(c, n, &scan, mh, mb, &a);
    FUZZ_CHECK(rw == 0 || rw == 1 || known_error(rw));
    if (rw < 0) FUZZ_CHECK(a.err != NULL);
    if (rw == 1 || (rw == 0 && a.head_len)) {
      FUZZ_CHECK(a.head_len <= n && a.head_len <= mh);
      FUZZ_CHECK(a.body_len <= mb);
      FUZZ_CHECK(a.nh <= GW_MAX_HEADERS);
      FUZZ_CHECK(within(c, a.head_len, a.method, a.method_len));
      FUZZ_CHECK(within(c, a.head_len, a.target, a.target_len));
      for (size_t i = 0; i < a.nh; i++) {
        FUZZ_CHECK(within(c, a.head_len, a.h[i].name, a.h[i].nlen));
        FUZZ_CHECK(within(c, a.head_len, a.h[i].val, a.h[i].vlen));
      }
      FUZZ_CHECK(a.minor == 0 || a.minor == 1);
      (void)mrpc__gw_hdr(&a, "content-length");
      (void)mrpc__gw_hdr(&a, "Host");
    }
    if (rw == 1) {
      FUZZ_CHECK(a.msg_len <= n && a.head_len + a.body_len <= a.msg_len);
      if (a.chunked) {
        /* The decoded body comes out whole and within max_body. */
        char *body = malloc(a.body_len + 1);
        FUZZ_CHECK(body != NULL);
        FUZZ_CHECK(mrpc__gw_http_body_copy(&a, body) == a.body_len);
        free(body);
      } else {
        FUZZ_CHECK(within(c, n, a.body, a.body_len));
      }
    }
    memset(&b, 0, sizeof b);
    ri = incremental(c, n, &rng, mh, mb, &b);
    /* A prefix may pass max_header before the byte that makes the whole
     * malformed arrives: then -431 comes first, and is right too. */
    if (ri != rw) fprintf(stderr, "whole %d, incremental %d\n", rw, ri);
    FUZZ_CHECK(ri == rw || (ri == -431 && rw < 0));
    if (rw == 1) {
      FUZZ_CHECK(a.head_len == b.head_len && a.body_len == b.body_len);
      FUZZ_CHECK(a.msg_len == b.msg_len && a.chunked == b.chunked);
      FUZZ_CHECK(a.method_len == b.method_len && a.target_len == b.target_len);
      FUZZ_CHECK(a.nh == b.nh && a.keep == b.keep && a.minor == b.minor);
    }
    free(c);
    if (rw != 1) break;
    off += a.msg_len;
  }
  return 0;
}
