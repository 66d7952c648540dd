/* test_http_parse.c: the gateway's HTTP/1.x request parser
 * (gateway/gateway_http_parse.h) alone, as a pure function over bytes: no
 * socket, no loop, no gateway.
 *
 * Scenarios: a whole request and its fields; the same fed byte by byte (and
 * with bare LF line ends); pipelined requests with empty lines between;
 * Content-Length (none, equal repeats, a body still coming, max_body);
 * Expect: 100-continue seen once the head is whole; the keep-alive rules of
 * HTTP/1.0 and HTTP/1.1; and every request the gateway refuses, each with
 * its status: 400 not HTTP, malformed request line, header line or name,
 * folded header, bad or conflicting Content-Length; 431 a head past
 * max_header (whole or still coming) or past GW_MAX_HEADERS lines; 413 a
 * body past max_body; 501 a transfer coding other than chunked; 505
 * another HTTP version. Chunked bodies: whole (extensions and trailers
 * ignored), byte by byte, pipelined between other requests, and every
 * refusal: 400 a bad size, extension, trailer or missing CR LF, a size
 * overflowing, both Content-Length and chunked, chunked twice, HTTP/1.0;
 * 413 data past max_body or framing past GW_CHUNK_FRAMING. */
#include <stdlib.h>
#include "check.h"
#include "gateway/gateway_http_parse.h"

#define MAX_HEADER 65536u /* the gateway's default max_header */
#define MAX_BODY 1000u

static gw_http_msg_t M;

/* Parses s whole, as a new request. */
static int parse_n(const char *s, size_t n, gw_http_msg_t *m) {
  gw_http_scan_t scan = {0};
  return mrpc__gw_http_parse(s, n, &scan, MAX_HEADER, MAX_BODY, m);
}
static int parse(const char *s) { return parse_n(s, strlen(s), &M); }

static int is(const char *p, size_t n, const char *s) {
  return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

static int hdr_is(const gw_http_msg_t *m, const char *name, const char *val) {
  const gw_hdr_t *h = mrpc__gw_hdr(m, name);
  return h && is(h->val, h->vlen, val);
}

static const char WHOLE[] =
    "POST /Arith/Mul?x=1 HTTP/1.1\r\n"
    "Host: example\r\n"
    "X-RPCX-Meta:  a=1&b=2 \t\r\n"
    "content-length: 5\r\n"
    "\r\n"
    "hello";

static void t_whole(void) {
  CHECK_EQ_INT(parse(WHOLE), 1);
  CHECK(is(M.method, M.method_len, "POST"));
  CHECK(is(M.target, M.target_len, "/Arith/Mul?x=1"));
  CHECK_EQ_INT(M.minor, 1);
  CHECK_EQ_INT(M.keep, 1);
  CHECK_EQ_INT(M.expect_continue, 0);
  CHECK_EQ_INT(M.nh, 3);
  CHECK_EQ_INT(M.head_len, sizeof WHOLE - 1 - 5);
  CHECK(is(M.body, M.body_len, "hello"));
  CHECK(hdr_is(&M, "host", "example"));
  CHECK(hdr_is(&M, "X-RPCX-META", "a=1&b=2")); /* trimmed both sides */
  CHECK(hdr_is(&M, "Content-Length", "5"));
  CHECK(mrpc__gw_hdr(&M, "Authorization") == NULL);
  CHECK(M.err == NULL);
  /* Bytes past the request are the next request's: not read. */
  {
    char buf[256];
    size_t n = sizeof WHOLE - 1;
    memcpy(buf, WHOLE, n);
    memcpy(buf + n, "GARBAGE", 7);
    CHECK_EQ_INT(parse_n(buf, n + 7, &M), 1);
    CHECK(is(M.body, M.body_len, "hello"));
  }
  report("a whole request: method, target, version, headers, body");
}

/* Feeds s one byte more per call, keeping the scan position as a
 * connection does; checks every prefix is incomplete and the last whole. */
static void feed_bytewise(const char *s, size_t head_len) {
  size_t n, len = strlen(s), last_scan = 0;
  gw_http_scan_t scan = {0};
  int rc = 0, monotonic = 1, early = 0, head_seen = 0;
  for (n = 1; n <= len; n++) {
    rc = mrpc__gw_http_parse(s, n, &scan, MAX_HEADER, MAX_BODY, &M);
    if (n < len && rc != 0) early = 1;
    if (scan.head < last_scan) monotonic = 0;
    last_scan = scan.head;
    if (rc == 0 && M.head_len) {
      if (!head_seen) CHECK_EQ_INT(n, head_len); /* known as soon as it is whole */
      head_seen = 1;
    }
  }
  CHECK(!early);
  CHECK(monotonic);
  CHECK_EQ_INT(rc, 1);
  CHECK_EQ_INT(M.head_len, head_len);
}

static void t_bytewise(void) {
  static const char lf[] = "PUT /S/M HTTP/1.0\nA: b\nContent-Length: 3\n\nxyz";
  feed_bytewise(WHOLE, sizeof WHOLE - 1 - 5);
  CHECK(is(M.body, M.body_len, "hello"));
  CHECK(hdr_is(&M, "X-RPCX-Meta", "a=1&b=2"));
  feed_bytewise(lf, sizeof lf - 1 - 3);
  CHECK(is(M.method, M.method_len, "PUT"));
  CHECK(is(M.target, M.target_len, "/S/M"));
  CHECK_EQ_INT(M.minor, 0);
  CHECK(hdr_is(&M, "a", "b"));
  CHECK(is(M.body, M.body_len, "xyz"));
  /* No body: whole at the blank line. */
  feed_bytewise("GET / HTTP/1.1\r\n\r\n", 18);
  CHECK_EQ_INT(M.body_len, 0);
  report("fed byte by byte: incomplete until the last byte, CRLF or bare LF");
}

static void t_pipelined(void) {
  static const char two[] =
      "\r\n\r\nPOST /A/B HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]"
      "\r\nPOST /C/D HTTP/1.1\r\nContent-Length: 1\r\n\r\n7"
      "GET /E/F HTTP/1.1\r\n";
  const char *p = two;
  size_t n = sizeof two - 1, skip;
  gw_http_scan_t scan = {0};
  skip = mrpc__gw_http_blank(p, n);
  CHECK_EQ_INT(skip, 4);
  p += skip, n -= skip;
  CHECK_EQ_INT(mrpc__gw_http_parse(p, n, &scan, MAX_HEADER, MAX_BODY, &M), 1);
  CHECK(is(M.target, M.target_len, "/A/B"));
  CHECK(is(M.body, M.body_len, "[]"));
  p += M.head_len + M.body_len, n -= M.head_len + M.body_len;
  skip = mrpc__gw_http_blank(p, n);
  CHECK_EQ_INT(skip, 2);
  p += skip, n -= skip;
  memset(&scan, 0, sizeof scan);
  CHECK_EQ_INT(mrpc__gw_http_parse(p, n, &scan, MAX_HEADER, MAX_BODY, &M), 1);
  CHECK(is(M.target, M.target_len, "/C/D"));
  CHECK(is(M.body, M.body_len, "7"));
  p += M.head_len + M.body_len, n -= M.head_len + M.body_len;
  CHECK_EQ_INT(mrpc__gw_http_blank(p, n), 0);
  memset(&scan, 0, sizeof scan);
  CHECK_EQ_INT(mrpc__gw_http_parse(p, n, &scan, MAX_HEADER, MAX_BODY, &M), 0);
  CHECK_EQ_INT(M.head_len, 0); /* the third's head is not whole yet */
  CHECK_EQ_INT(scan.head, n);
  CHECK_EQ_INT(mrpc__gw_http_blank("\r\n\n", 3), 3);
  report("pipelined requests, empty lines between them skipped");
}

static void t_content_length(void) {
  char buf[256];
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\n\r\n"), 1);
  CHECK_EQ_INT(M.body_len, 0);
  CHECK(M.body != NULL);
  /* A body still coming: the head is known, the request is not whole. */
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"), 0);
  CHECK_EQ_INT(M.head_len, 42);
  CHECK_EQ_INT(M.body_len, 10);
  /* The same length twice is one length. */
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab"), 1);
  CHECK(is(M.body, M.body_len, "ab"));
  /* max_body itself is allowed, one more is 413. */
  snprintf(buf, sizeof buf, "POST /A/B HTTP/1.1\r\nContent-Length: %u\r\n\r\n", MAX_BODY);
  CHECK_EQ_INT(parse(buf), 0);
  CHECK_EQ_INT(M.body_len, MAX_BODY);
  snprintf(buf, sizeof buf, "POST /A/B HTTP/1.1\r\nContent-Length: %u\r\n\r\n", MAX_BODY + 1);
  CHECK_EQ_INT(parse(buf), -413);
  CHECK(M.err != NULL);
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nContent-Length: 0000000000000000005\r\n\r\nhello"), 1);
  CHECK_EQ_INT(M.body_len, 5);
  report("Content-Length: none, repeated, a body still coming, max_body (413 past it)");
}

static void t_expect_continue(void) {
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"), 0);
  CHECK(M.head_len > 0);
  CHECK_EQ_INT(M.expect_continue, 1);
  CHECK_EQ_INT(M.body_len, 5);
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nexpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx"), 1);
  CHECK_EQ_INT(M.expect_continue, 1);
  /* Not known before the head is whole. */
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nExpect: 100-continue\r\n"), 0);
  CHECK_EQ_INT(M.head_len, 0);
  CHECK_EQ_INT(M.expect_continue, 0);
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nExpect: something\r\nContent-Length: 1\r\n\r\n"), 0);
  CHECK_EQ_INT(M.expect_continue, 0);
  report("Expect: 100-continue, once the head is whole");
}

static void t_keep_alive(void) {
  CHECK_EQ_INT(parse("GET / HTTP/1.0\r\n\r\n"), 1);
  CHECK_EQ_INT(M.minor, 0);
  CHECK_EQ_INT(M.keep, 0);
  CHECK_EQ_INT(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
  CHECK_EQ_INT(M.keep, 1);
  CHECK_EQ_INT(parse("GET / HTTP/1.0\r\nConnection: Upgrade, Keep-Alive\r\n\r\n"), 1);
  CHECK_EQ_INT(M.keep, 1);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\n\r\n"), 1);
  CHECK_EQ_INT(M.minor, 1);
  CHECK_EQ_INT(M.keep, 1);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), 1);
  CHECK_EQ_INT(M.keep, 0);
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nConnection: keep-alive, CLOSE\r\n\r\n"), 1);
  CHECK_EQ_INT(M.keep, 0); /* close wins */
  CHECK_EQ_INT(parse("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n"), 1);
  CHECK_EQ_INT(M.keep, 1); /* a token, not a prefix */
  report("keep-alive: HTTP/1.0 closes unless keep-alive, HTTP/1.1 stays unless close");
}

/* A refusal: the status and a reason to write in the answer. */
static void refused(const char *s, size_t n, int status) {
  int rc = parse_n(s, n, &M);
  if (rc != -status) fprintf(stderr, "    for %.60s\n", s);
  CHECK_EQ_INT(rc, -status);
  CHECK(M.err != NULL && *M.err);
}
#define REFUSED(s, st) refused(s, strlen(s), st)

static void t_refused(void) {
  static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
  char *big = malloc(MAX_HEADER + 200);
  size_t n;
  int i;
  /* Not HTTP: refused as soon as the first bytes show it. */
  refused(tls, sizeof tls - 1, 400);
  refused(tls, 1, 400);
  REFUSED("GET\x01 / HTTP/1.1\r\n", 400);
  REFUSED("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ", 400); /* a method past 32 bytes */
  /* Malformed request lines. */
  REFUSED("POST  HTTP/1.1\r\n\r\n", 400);
  REFUSED(" /A/B HTTP/1.1\r\n\r\n", 400);
  REFUSED("POST /A/B\r\n\r\n", 400);
  REFUSED("POST /A/B  HTTP/1.1\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.x\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.10\r\n\r\n", 400);
  REFUSED("POST /A/B http/1.1\r\n\r\n", 400);
  REFUSED("POST /A\x7f HTTP/1.1\r\n\r\n", 400);
  /* Versions. */
  REFUSED("POST /A/B HTTP/2.0\r\n\r\n", 505);
  REFUSED("POST /A/B HTTP/1.2\r\n\r\n", 505);
  REFUSED("POST /A/B HTTP/0.9\r\n\r\n", 505);
  /* Header lines. */
  REFUSED("POST /A/B HTTP/1.1\r\nNoColonHere\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\n: v\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nX Y: v\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nX-A: v\r\n Folded: x\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nX-A: v\r\n\tFolded\r\n\r\n", 400);
  /* Content-Length. */
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: \r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: 12345678901234567890\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: 20000000\r\n\r\n", 413);
  /* Transfer codings other than chunked (t_chunked_refused has the rest). */
  REFUSED("POST /A/B HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n", 501);
  /* Too many header lines: GW_MAX_HEADERS is fine, one more is 431. */
  n = (size_t)snprintf(big, 64, "POST /A/B HTTP/1.1\r\n");
  for (i = 0; i < GW_MAX_HEADERS; i++)
    n += (size_t)snprintf(big + n, 64, "X-H%d: v\r\n", i);
  memcpy(big + n, "\r\n", 3);
  CHECK_EQ_INT(parse_n(big, n + 2, &M), 1);
  CHECK_EQ_INT(M.nh, GW_MAX_HEADERS);
  n += (size_t)snprintf(big + n, 64, "X-H%d: v\r\n\r\n", i);
  refused(big, n, 431);
  /* A head past max_header: refused whole, and while it is still coming. */
  n = (size_t)snprintf(big, 64, "POST /A/B HTTP/1.1\r\nX-Big: ");
  while (n < MAX_HEADER - 4) big[n++] = 'a';
  memcpy(big + n, "\r\n\r\n", 4);
  CHECK_EQ_INT(parse_n(big, MAX_HEADER, &M), 1); /* exactly max_header */
  memcpy(big + n, "a\r\n\r\n", 5);
  refused(big, MAX_HEADER + 1, 431);
  for (n = 0; n < MAX_HEADER + 100; n++) big[n] = n < 20 ? "POST /A/B HTTP/1.1\r\n"[n] : 'a';
  CHECK_EQ_INT(parse_n(big, MAX_HEADER, &M), 0);
  refused(big, MAX_HEADER + 1, 431);
  {
    /* A smaller limit is the caller's: the parser keeps no state. */
    gw_http_scan_t scan = {0};
    CHECK_EQ_INT(mrpc__gw_http_parse(WHOLE, sizeof WHOLE - 1, &scan, 20, MAX_BODY, &M), -431);
    memset(&scan, 0, sizeof scan);
    CHECK_EQ_INT(mrpc__gw_http_parse(WHOLE, sizeof WHOLE - 1, &scan, MAX_HEADER, 4, &M), -413);
  }
  free(big);
  report("refused: 400 not HTTP or malformed, 431 head or lines, 413, 501, 505");
}

/* ---- chunked bodies ------------------------------------------------------------ */

#define TE_HEAD "POST /A/B HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"

/* The body of M (a request parsed whole) copied out, as the gateway does. */
static int body_copied_is(const char *want) {
  char out[MAX_BODY + 1];
  size_t n = mrpc__gw_http_body_copy(&M, out);
  return n == M.body_len && is(out, n, want);
}

static const char CHUNKED[] =
    "POST /Arith/Mul HTTP/1.1\r\n"
    "Host: example\r\n"
    "Transfer-Encoding: Chunked\r\n"
    "\r\n"
    "5;name=value;other\r\n"
    "hello\r\n"
    "00006 \t;x=\"q\"\r\n"
    " world\r\n"
    "a\r\n"
    "0123456789\r\n"
    "0;last\r\n"
    "X-Checksum: abc\r\n"
    "Trailer-Two: x\r\n"
    "\r\n";

static void t_chunked(void) {
  CHECK_EQ_INT(parse(CHUNKED), 1);
  CHECK_EQ_INT(M.chunked, 1);
  CHECK_EQ_INT(M.keep, 1);
  CHECK_EQ_INT(M.head_len, (size_t)(strstr(CHUNKED, "\r\n\r\n") + 4 - CHUNKED));
  CHECK_EQ_INT(M.msg_len, sizeof CHUNKED - 1);
  CHECK_EQ_INT(M.body_len, 21);
  CHECK(body_copied_is("hello world0123456789"));
  CHECK(mrpc__gw_hdr(&M, "X-Checksum") == NULL); /* trailers are skipped */
  /* The last chunk alone: an empty body. Upper-case hex. */
  CHECK_EQ_INT(parse(TE_HEAD "0\r\n\r\n"), 1);
  CHECK_EQ_INT(M.body_len, 0);
  CHECK_EQ_INT(M.msg_len, sizeof TE_HEAD - 1 + 5);
  CHECK(body_copied_is(""));
  CHECK_EQ_INT(parse(TE_HEAD "B\r\n[1,2,3,4,5]\r\n0\r\n\r\n"), 1);
  CHECK(body_copied_is("[1,2,3,4,5]"));
  /* A list with one coding, over two header lines' worth of spaces. */
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nTransfer-Encoding: , chunked ,\r\n\r\n0\r\n\r\n"), 1);
  CHECK_EQ_INT(M.chunked, 1);
  /* Still coming: the head is known, and the data of the chunks so far. */
  CHECK_EQ_INT(parse(TE_HEAD "3\r\nabc\r\n4\r\nde"), 0);
  CHECK_EQ_INT(M.head_len, sizeof TE_HEAD - 1);
  CHECK_EQ_INT(M.chunked, 1);
  CHECK_EQ_INT(M.body_len, 3);
  CHECK_EQ_INT(parse(TE_HEAD "0\r\n"), 0); /* the trailers' blank line is due */
  /* Expect: 100-continue is seen with the head, before any chunk. */
  CHECK_EQ_INT(parse("POST /A/B HTTP/1.1\r\nExpect: 100-continue\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"), 0);
  CHECK_EQ_INT(M.expect_continue, 1);
  CHECK(M.head_len > 0);
  /* max_body of data is allowed, over chunks. */
  {
    static char buf[3000];
    size_t n = (size_t)snprintf(buf, sizeof buf, TE_HEAD "%x\r\n", MAX_BODY - 1);
    memset(buf + n, 'd', MAX_BODY - 1);
    n += MAX_BODY - 1;
    n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n1\r\ne\r\n0\r\n\r\n");
    CHECK_EQ_INT(parse_n(buf, n, &M), 1);
    CHECK_EQ_INT(M.body_len, MAX_BODY);
  }
  report("chunked: sizes in hex, extensions and trailers ignored, the last chunk, max_body");
}

/* Feeds s one byte more per call, as a connection does; every prefix is
 * incomplete, the whole is 1, and the chunk scan only moves forward. */
static void feed_chunked(const char *s, size_t len, const char *want) {
  gw_http_scan_t scan = {0};
  size_t n, last_at = 0;
  int rc = 0, early = 0, monotonic = 1;
  for (n = 1; n <= len; n++) {
    rc = mrpc__gw_http_parse(s, n, &scan, MAX_HEADER, MAX_BODY, &M);
    if (n < len && rc != 0) early = 1;
    if (scan.at < last_at) monotonic = 0;
    last_at = scan.at;
  }
  CHECK(!early);
  CHECK(monotonic);
  CHECK_EQ_INT(rc, 1);
  CHECK_EQ_INT(M.msg_len, len);
  CHECK(body_copied_is(want));
}

static void t_chunked_bytewise(void) {
  static const char lf_head[] =
      "POST /S/M HTTP/1.1\nTransfer-Encoding: chunked\n\n2\r\nab\r\n0\r\n\r\n";
  feed_chunked(CHUNKED, sizeof CHUNKED - 1, "hello world0123456789");
  feed_chunked(lf_head, sizeof lf_head - 1, "ab"); /* a bare-LF head is fine */
  feed_chunked(TE_HEAD "0\r\n\r\n", sizeof TE_HEAD - 1 + 5, "");
  report("chunked, fed byte by byte: incomplete until the last byte, each chunk read once");
}

static void t_chunked_pipelined(void) {
  static const char three[] =
      "POST /A/B HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\n[]\r\n0\r\nT: 1\r\n\r\n"
      "\r\n"
      "POST /C/D HTTP/1.1\r\nContent-Length: 1\r\n\r\n7"
      "POST /E/F HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "1\r\n8\r\n0\r\n\r\n"
      "POST /G/H HTTP/1.1\r\n";
  const char *p = three;
  size_t n = sizeof three - 1, skip;
  gw_http_scan_t scan = {0};
  CHECK_EQ_INT(mrpc__gw_http_parse(p, n, &scan, MAX_HEADER, MAX_BODY, &M), 1);
  CHECK(is(M.target, M.target_len, "/A/B"));
  CHECK(body_copied_is("[]"));
  p += M.msg_len, n -= M.msg_len;
  skip = mrpc__gw_http_blank(p, n);
  CHECK_EQ_INT(skip, 2);
  p += skip, n -= skip;
  memset(&scan, 0, sizeof scan);
  CHECK_EQ_INT(mrpc__gw_http_parse(p, n, &scan, MAX_HEADER, MAX_BODY, &M), 1);
  CHECK(is(M.target, M.target_len, "/C/D"));
  CHECK_EQ_INT(M.chunked, 0);
  CHECK_EQ_INT(M.msg_len, M.head_len + 1);
  CHECK(body_copied_is("7"));
  p += M.msg_len, n -= M.msg_len;
  memset(&scan, 0, sizeof scan);
  CHECK_EQ_INT(mrpc__gw_http_parse(p, n, &scan, MAX_HEADER, MAX_BODY, &M), 1);
  CHECK(is(M.target, M.target_len, "/E/F"));
  CHECK(body_copied_is("8"));
  p += M.msg_len, n -= M.msg_len;
  CHECK(n == 20 && memcmp(p, "POST /G/H", 9) == 0);
  report("pipelined: a Content-Length request between chunked ones");
}

static void t_chunked_refused(void) {
  static char buf[70000];
  size_t n;
  int i;
  /* Transfer codings: another than chunked is 501; what frames badly, 400. */
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501);
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 501);
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: chunkedx\r\n\r\n", 501);
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
          "0\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400);
  REFUSED("POST /A/B HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
  /* Chunk sizes and extensions. */
  REFUSED(TE_HEAD "\r\n", 400);           /* no size */
  REFUSED(TE_HEAD "zz\r\n", 400);
  REFUSED(TE_HEAD "-5\r\n", 400);
  REFUSED(TE_HEAD "0x5\r\n", 400);
  REFUSED(TE_HEAD " 5\r\nhello\r\n", 400);
  REFUSED(TE_HEAD "5 \r\nhello\r\n", 400); /* whitespace only before ";" */
  REFUSED(TE_HEAD "5 x\r\nhello\r\n", 400);
  REFUSED(TE_HEAD "5;a\x01z\r\nhello\r\n", 400);
  REFUSED(TE_HEAD "5;a\rz\r\nhello\r\n", 400);
  REFUSED(TE_HEAD "10000000000000000\r\n", 400); /* 2^64: overflows */
  REFUSED(TE_HEAD "000010000000000000000\r\n", 400);
  REFUSED(TE_HEAD "FFFFFFFFFFFFFFFF\r\n", 413);  /* fits 64 bits, not max_body */
  /* CR LF missing: after a size line, after the data (as soon as the byte
   * that should be CR or LF comes), after a trailer line. */
  REFUSED(TE_HEAD "5\nhello\r\n0\r\n\r\n", 400);
  REFUSED(TE_HEAD "5\r\nhelloX", 400);
  REFUSED(TE_HEAD "5\r\nhello\rX", 400);
  REFUSED(TE_HEAD "5\r\nhello\n0\r\n\r\n", 400);
  REFUSED(TE_HEAD "5\r\nhello world\r\n0\r\n\r\n", 400); /* more data than its size */
  REFUSED(TE_HEAD "0\r\n\n", 400);
  REFUSED(TE_HEAD "0\r\nX-T: v\n\r\n", 400);
  REFUSED(TE_HEAD "0\r\nnot a trailer\r\n\r\n", 400);
  REFUSED(TE_HEAD "0\r\n: v\r\n\r\n", 400);
  REFUSED(TE_HEAD "0\r\n folded: v\r\n\r\n", 400);
  /* Data past max_body: refused at the size line that passes it, before
   * its data comes. */
  snprintf(buf, sizeof buf, TE_HEAD "%x\r\n", MAX_BODY + 1);
  REFUSED(buf, 413);
  n = (size_t)snprintf(buf, sizeof buf, TE_HEAD "258\r\n"); /* 600 */
  memset(buf + n, 'd', 600);
  n += 600;
  n += (size_t)snprintf(buf + n, sizeof buf - n, "\r\n258\r\n");
  refused(buf, n, 413);
  /* Framing past GW_CHUNK_FRAMING plus half the data: 1-byte chunks (5
   * bytes of framing each), a size line that never ends, trailers that
   * never end. */
  n = (size_t)snprintf(buf, sizeof buf, TE_HEAD);
  for (i = 0; i < 4000; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "1\r\nx\r\n");
  {
    gw_http_scan_t scan = {0};
    int rc = mrpc__gw_http_parse(buf, n, &scan, MAX_HEADER, 100000, &M);
    CHECK_EQ_INT(rc, -413);
    CHECK(M.err != NULL);
  }
  n = (size_t)snprintf(buf, sizeof buf, TE_HEAD "5;");
  while (n < GW_CHUNK_FRAMING + 100) buf[n++] = 'e';
  CHECK_EQ_INT(parse_n(buf, GW_CHUNK_FRAMING, &M), 0);
  refused(buf, n, 413);
  n = (size_t)snprintf(buf, sizeof buf, TE_HEAD "0\r\n");
  while (n < GW_CHUNK_FRAMING + 100) n += (size_t)snprintf(buf + n, sizeof buf - n, "T: v\r\n");
  refused(buf, n, 413);
  report("chunked refused: 501 other codings; 400 sizes, CR LF, trailers, both lengths; 413");
}

int main(void) {
  t_whole();
  t_bytewise();
  t_pipelined();
  t_content_length();
  t_expect_continue();
  t_keep_alive();
  t_refused();
  t_chunked();
  t_chunked_bytewise();
  t_chunked_pipelined();
  t_chunked_refused();
  return finish();
}
