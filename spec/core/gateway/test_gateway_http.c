/* test_gateway_http.c: the gateway's HTTP side (moonrpc/gateway.h) on the
 * same port as rpcx, against real backends registered in the Redis of the
 * ctest fixture, from a raw TCP peer so every byte is the test's.
 *
 * Scenarios: POST /Service/Method with JSON (keep-alive, the reply's
 * metadata as X-RPCX-Meta), its error statuses (500, 404, 405, 400, null
 * for an empty body); rpcx's X-RPCX-* convention (headers both ways,
 * Authorization as __AUTH, service from the path, errors, heartbeat,
 * oneway, a gzip body); pipelined requests answered in order; HTTP/1.0
 * with and without keep-alive, Connection: close; Expect: 100-continue;
 * what is refused and closed (garbage 400, a head past 64 KiB 431, too
 * many headers 431, a body past max_frame 413, chunked past max_frame 413,
 * Transfer-Encoding: gzip 501, a bad chunk size or Content-Length with
 * chunked 400, a malformed line 400, HTTP/2.0 505); chunked bodies (in
 * several reads then a pipelined request, with 100-continue, rpcx-style
 * gzipped); a peer gone while its call is forwarded; and
 * close with an HTTP call in flight (503, then the connection closes). */
#include "gateway_harness.h"

static backend_t A, B;
static gwt_t G;

/* ---- responses ------------------------------------------------------------------ */

typedef struct hresp_s {
  int status;
  size_t head, head_len, body, body_len; /* offsets into the peer's bytes */
} hresp_t;

static const char *find_ci(const char *h, size_t n, const char *s) {
  size_t i, k = strlen(s);
  for (i = 0; i + k <= n; i++)
    if (strncasecmp(h + i, s, k) == 0) return h + i;
  return NULL;
}

/* Complete responses in `got`, up to `max`. */
static int parse_responses(const mrpc_buf_t *got, hresp_t *out, int max) {
  size_t off = 0;
  int count = 0;
  while (count < max && off < got->len) {
    const char *p = got->data + off, *end, *cl;
    size_t n = got->len - off, hl, bl = 0;
    if (!(end = find_ci(p, n, "\r\n\r\n"))) break;
    hl = (size_t)(end - p) + 4;
    out[count].status = atoi(p + 9);
    if ((cl = find_ci(p, hl, "\r\nContent-Length:"))) bl = (size_t)atol(cl + 17);
    if (out[count].status < 200) bl = 0;
    if (n < hl + bl) break;
    out[count].head = off;
    out[count].head_len = hl;
    out[count].body = off + hl;
    out[count].body_len = bl;
    off += hl + bl;
    count++;
  }
  return count;
}

/* The value of header `name` in response `r` ("" when absent). */
static const char *hval(const peer_t *p, const hresp_t *r, const char *name) {
  static char v[2048];
  char key[128];
  const char *h = p->got.data + r->head, *s, *e;
  snprintf(key, sizeof key, "\r\n%s:", name);
  v[0] = 0;
  if (!(s = find_ci(h, r->head_len, key))) return v;
  s += strlen(key);
  while (*s == ' ') s++;
  e = strstr(s, "\r\n");
  snprintf(v, sizeof v, "%.*s", (int)(e - s), s);
  return v;
}

static int body_is(const peer_t *p, const hresp_t *r, const char *s, size_t n) {
  return r->body_len == n && memcmp(p->got.data + r->body, s, n) == 0;
}
#define BODY_IS(p, r, s) body_is(p, r, s, strlen(s))

/* Sends `req` and waits for `n` complete responses in all (counting the
 * ones before) or the end of the connection. Returns how many there are. */
static int exchange(peer_t *p, const char *req, size_t len, hresp_t *out, int n) {
  if (len) peer_send(p, req, len);
  WAITT(parse_responses(&p->got, out, n) >= n || p->eof, 5000);
  return parse_responses(&p->got, out, n);
}
#define EXCHANGE(p, s, out, n) exchange(p, s, strlen(s), out, n)

/* A fresh connection that sends `req` and must get one answer with
 * `status`, then be closed by the gateway. */
static void expect_fatal(const char *req, size_t len, int status) {
  peer_t p;
  hresp_t r[1];
  peer_open(&p, G.port);
  CHECK_EQ_INT(exchange(&p, req, len, r, 1), 1);
  CHECK_EQ_INT(r[0].status, status);
  CHECK(strcmp(hval(&p, &r[0], "Connection"), "close") == 0);
  WAIT(p.eof);
  peer_close(&p);
}

static char req_buf[4096];
static const char *post(const char *path, const char *body) {
  snprintf(req_buf, sizeof req_buf,
           "POST %s HTTP/1.1\r\nHost: gw\r\nContent-Length: %zu\r\n\r\n%s", path,
           strlen(body), body);
  return req_buf;
}

/* Answers the one request Arith.Hold keeps, on whichever backend has it. */
static void answer_held(const char *payload) {
  backend_t *b = A.nheld ? &A : &B;
  CHECK_EQ_INT(A.nheld + B.nheld, 1);
  mrpc_req_reply(b->held[0], payload, strlen(payload), NULL, 0);
  A.nheld = B.nheld = 0;
}

/* ---- scenarios ------------------------------------------------------------------- */

static void t_json(void) {
  peer_t p;
  hresp_t r[3];
  mrpc_client_t *c = cli_new(G.addr, NULL);
  rec_t rr = {0};
  backend_t *b;
  bk_reset(&A);
  bk_reset(&B);
  peer_open(&p, G.port);
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Echo", "{\"A\":7,\"B\":8}"), r, 1), 1);
  b = A.calls ? &A : &B;
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(strcmp(hval(&p, &r[0], "Content-Type"), "application/json") == 0);
  CHECK(BODY_IS(&p, &r[0], "{\"A\":7,\"B\":8}"));
  CHECK(strstr(hval(&p, &r[0], "X-RPCX-Meta"), b == &A ? "who=A" : "who=B") != NULL);
  CHECK_EQ_INT(b->serialize, MRPC_SERIALIZE_JSON << 4); /* forwarded as JSON */
  CHECK_BUF(b->payload, "{\"A\":7,\"B\":8}");
  /* Keep-alive: the same connection again; rpcx on the same port meanwhile. */
  CHECK_EQ_INT(call_ex(c, "Arith", "Who", "", 0, 0, &rr, NULL), 0);
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Echo", "[1,2]"), r, 2), 2);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK(BODY_IS(&p, &r[1], "[1,2]"));
  CHECK(!p.eof);
  WAIT(rr.n == 1);
  CHECK_EQ_INT(rr.status, 0);
  CHECK(rr.payload.len == 1);
  rec_free(&rr);
  cli_close(c);
  peer_close(&p);
  report("POST /Service/Method with JSON: forwarded as JSON, keep-alive, rpcx beside it");
}

static void t_json_errors(void) {
  peer_t p;
  hresp_t r[8];
  peer_open(&p, G.port);
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Fail", "{}"), r, 1), 1);
  CHECK_EQ_INT(r[0].status, 500);
  CHECK(BODY_IS(&p, &r[0], "{\"error\":\"boom\"}"));
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Nope", "{}"), r, 2), 2);
  CHECK_EQ_INT(r[1].status, 404);
  CHECK(BODY_IS(&p, &r[1], "{\"error\":\"rpcx: can't find method Nope\"}"));
  CHECK_EQ_INT(EXCHANGE(&p, post("/Nobody/X", "{}"), r, 3), 3);
  CHECK_EQ_INT(r[2].status, 404);
  CHECK(BODY_IS(&p, &r[2], "{\"error\":\"rpcx: gateway: no instance of service Nobody\"}"));
  CHECK_EQ_INT(EXCHANGE(&p, "GET /Arith/Echo HTTP/1.1\r\nHost: gw\r\n\r\n", r, 4), 4);
  CHECK_EQ_INT(r[3].status, 405);
  CHECK(strcmp(hval(&p, &r[3], "Allow"), "POST, PUT") == 0);
  CHECK_EQ_INT(EXCHANGE(&p, post("/just-one", "{}"), r, 5), 5);
  CHECK_EQ_INT(r[4].status, 404);
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Echo", "{bad"), r, 6), 6);
  CHECK_EQ_INT(r[5].status, 400);
  CHECK(BODY_IS(&p, &r[5], "{\"error\":\"rpcx: gateway: the body is not valid JSON\"}"));
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Echo", ""), r, 7), 7);
  CHECK_EQ_INT(r[6].status, 200);
  CHECK(BODY_IS(&p, &r[6], "null")); /* no body is sent as null */
  CHECK_EQ_INT(EXCHANGE(&p, post("/bad%20name/X", "{}"), r, 8), 8);
  CHECK_EQ_INT(r[7].status, 400);
  CHECK(!p.eof); /* none of these ends the connection */
  peer_close(&p);
  report("JSON errors: 500 remote, 404 unknown or no instance, 405, 400");
}

static void t_rpcx_style(void) {
  static const char body[] = "raw\0bytes\x08";
  char req[2048];
  peer_t p;
  hresp_t r[6];
  backend_t *b;
  int n;
  bk_reset(&A);
  bk_reset(&B);
  peer_open(&p, G.port);
  n = snprintf(req, sizeof req,
               "POST / HTTP/1.1\r\nX-RPCX-ServicePath: Arith\r\nX-RPCX-ServiceMethod: Echo\r\n"
               "X-RPCX-SerializeType: 0\r\nX-RPCX-MessageID: 77\r\n"
               "X-RPCX-Meta: a=1&b=x+y%%21&a=2\r\nAuthorization: Bearer t\r\n"
               "Content-Length: %zu\r\n\r\n", sizeof body - 1);
  memcpy(req + n, body, sizeof body - 1);
  CHECK_EQ_INT(exchange(&p, req, (size_t)n + sizeof body - 1, r, 1), 1);
  b = A.calls ? &A : &B;
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(body_is(&p, &r[0], body, sizeof body - 1));
  CHECK(strcmp(hval(&p, &r[0], "X-RPCX-MessageStatusType"), "Normal") == 0);
  CHECK(strcmp(hval(&p, &r[0], "X-RPCX-MessageID"), "77") == 0);
  CHECK(strcmp(hval(&p, &r[0], "X-RPCX-ServicePath"), "Arith") == 0);
  CHECK(strcmp(hval(&p, &r[0], "X-RPCX-ServiceMethod"), "Echo") == 0);
  CHECK(strcmp(hval(&p, &r[0], "X-RPCX-SerializeType"), "0") == 0);
  CHECK(strstr(hval(&p, &r[0], "X-RPCX-Meta"), "b=x+y%21") != NULL);
  CHECK(strcmp(b->meta, "a=1&b=x y!&__AUTH=Bearer t") == 0); /* first value wins */
  CHECK(b->payload.len == sizeof body - 1 && memcmp(b->payload.data, body, sizeof body - 1) == 0);
  /* The service from the path; msgpack. */
  CHECK_EQ_INT(EXCHANGE(&p, "POST /Arith HTTP/1.1\r\nX-RPCX-ServiceMethod: Who\r\n"
                            "X-RPCX-SerializeType: 3\r\nContent-Length: 0\r\n\r\n", r, 2), 2);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK(BODY_IS(&p, &r[1], "A") || BODY_IS(&p, &r[1], "B"));
  CHECK(strcmp(hval(&p, &r[1], "Content-Type"), "application/x-msgpack") == 0);
  /* A remote error. */
  CHECK_EQ_INT(EXCHANGE(&p, "POST / HTTP/1.1\r\nX-RPCX-ServicePath: Arith\r\n"
                            "X-RPCX-ServiceMethod: Fail\r\nX-RPCX-SerializeType: 1\r\n"
                            "Content-Length: 2\r\n\r\n{}", r, 3), 3);
  CHECK_EQ_INT(r[2].status, 500);
  CHECK(strcmp(hval(&p, &r[2], "X-RPCX-MessageStatusType"), "Error") == 0);
  CHECK(strcmp(hval(&p, &r[2], "X-RPCX-ErrorMessage"), "boom") == 0);
  CHECK(strcmp(hval(&p, &r[2], "X-RPCX-Meta"), "k=v") == 0);
  CHECK(BODY_IS(&p, &r[2], "partial"));
  /* No method: rpcx's text. */
  CHECK_EQ_INT(EXCHANGE(&p, "POST / HTTP/1.1\r\nX-RPCX-ServicePath: Arith\r\n"
                            "X-RPCX-SerializeType: 1\r\nContent-Length: 0\r\n\r\n", r, 4), 4);
  CHECK_EQ_INT(r[3].status, 400);
  CHECK(strcmp(hval(&p, &r[3], "X-RPCX-ErrorMessage"), "empty servicemethod") == 0);
  /* A heartbeat is answered by the gateway; a oneway is answered at once. */
  bk_reset(&A);
  bk_reset(&B);
  CHECK_EQ_INT(EXCHANGE(&p, "POST / HTTP/1.1\r\nX-RPCX-ServicePath: Arith\r\n"
                            "X-RPCX-ServiceMethod: Echo\r\nX-RPCX-SerializeType: 0\r\n"
                            "X-RPCX-Heartbeat: true\r\nContent-Length: 4\r\n\r\nbeat", r, 5), 5);
  CHECK_EQ_INT(r[4].status, 200);
  CHECK(BODY_IS(&p, &r[4], "beat"));
  CHECK_EQ_INT(A.calls + B.calls, 0);
  CHECK_EQ_INT(EXCHANGE(&p, "POST / HTTP/1.1\r\nX-RPCX-ServicePath: Arith\r\n"
                            "X-RPCX-ServiceMethod: Echo\r\nX-RPCX-SerializeType: 0\r\n"
                            "X-RPCX-Oneway: true\r\nContent-Length: 4\r\n\r\nfire", r, 6), 6);
  CHECK_EQ_INT(r[5].status, 200);
  CHECK_EQ_INT(r[5].body_len, 0);
  WAIT(A.oneway + B.oneway == 1);
  peer_close(&p);
  report("rpcx's X-RPCX-* convention: headers both ways, errors, heartbeat, oneway");
}

static void t_gzip_body(void) {
  mrpc_buf_t gz = {0}, req = {0};
  char plain[3000], head[256];
  peer_t p;
  hresp_t r[1];
  backend_t *b;
  int n;
  memset(plain, 'q', sizeof plain);
  CHECK_EQ_INT(mrpc_gzip_compress(&gz, plain, sizeof plain), 0);
  n = snprintf(head, sizeof head,
               "POST / HTTP/1.1\r\nX-RPCX-ServicePath: Arith\r\nX-RPCX-ServiceMethod: Echo\r\n"
               "X-RPCX-SerializeType: 0\r\nContent-Encoding: gzip\r\nContent-Length: %zu\r\n\r\n",
               gz.len);
  mrpc_buf_append(&req, head, (size_t)n);
  mrpc_buf_append(&req, gz.data, gz.len);
  bk_reset(&A);
  bk_reset(&B);
  peer_open(&p, G.port);
  CHECK_EQ_INT(exchange(&p, req.data, req.len, r, 1), 1);
  b = A.calls ? &A : &B;
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(body_is(&p, &r[0], plain, sizeof plain));
  CHECK_EQ_INT((b->flags >> 2) & 7, MRPC_COMPRESS_GZIP);
  CHECK(b->payload.len == sizeof plain && memcmp(b->payload.data, plain, sizeof plain) == 0);
  peer_close(&p);
  mrpc_buf_free(&gz);
  mrpc_buf_free(&req);
  report("a gzip body is inflated and forwarded gzipped");
}

static void t_pipeline(void) {
  char req[2048];
  peer_t p;
  hresp_t r[3];
  int n = 0;
  n += snprintf(req + n, sizeof req - (size_t)n, "%s", post("/Arith/Slow", "{}"));
  n += snprintf(req + n, sizeof req - (size_t)n, "%s", post("/Arith/Echo", "2"));
  n += snprintf(req + n, sizeof req - (size_t)n, "%s", post("/Arith/Echo", "3"));
  peer_open(&p, G.port);
  CHECK_EQ_INT(exchange(&p, req, (size_t)n, r, 3), 3);
  CHECK(BODY_IS(&p, &r[0], "slow")); /* answered last, written first */
  CHECK(BODY_IS(&p, &r[1], "2"));
  CHECK(BODY_IS(&p, &r[2], "3"));
  CHECK(!p.eof);
  peer_close(&p);
  report("pipelined requests are answered in order");
}

static void t_versions(void) {
  peer_t p;
  hresp_t r[2];
  /* HTTP/1.0: closed after the answer. */
  peer_open(&p, G.port);
  CHECK_EQ_INT(EXCHANGE(&p, "POST /Arith/Echo HTTP/1.0\r\nContent-Length: 1\r\n\r\n5", r, 1), 1);
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(BODY_IS(&p, &r[0], "5"));
  WAIT(p.eof);
  peer_close(&p);
  /* HTTP/1.0 with keep-alive: stays open. */
  peer_open(&p, G.port);
  CHECK_EQ_INT(EXCHANGE(&p, "POST /Arith/Echo HTTP/1.0\r\nConnection: keep-alive\r\n"
                            "Content-Length: 1\r\n\r\n6", r, 1), 1);
  CHECK(strcmp(hval(&p, &r[0], "Connection"), "keep-alive") == 0);
  CHECK_EQ_INT(EXCHANGE(&p, "POST /Arith/Echo HTTP/1.0\r\nConnection: keep-alive\r\n"
                            "Content-Length: 1\r\n\r\n7", r, 2), 2);
  CHECK(BODY_IS(&p, &r[1], "7"));
  CHECK(!p.eof);
  peer_close(&p);
  /* HTTP/1.1 with Connection: close. */
  peer_open(&p, G.port);
  CHECK_EQ_INT(EXCHANGE(&p, "POST /Arith/Echo HTTP/1.1\r\nConnection: close\r\n"
                            "Content-Length: 1\r\n\r\n8", r, 1), 1);
  CHECK(strcmp(hval(&p, &r[0], "Connection"), "close") == 0);
  WAIT(p.eof);
  peer_close(&p);
  report("HTTP/1.0, HTTP/1.0 keep-alive, HTTP/1.1 Connection: close");
}

static void t_expect_continue(void) {
  static const char head[] =
      "POST /Arith/Echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
  peer_t p;
  hresp_t r[2];
  peer_open(&p, G.port);
  peer_send(&p, head, sizeof head - 1);
  WAITT(p.got.len >= 25, 3000);
  CHECK(p.got.len >= 25 && memcmp(p.got.data, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
  CHECK_EQ_INT(EXCHANGE(&p, "[1,2]", r, 2), 2);
  CHECK_EQ_INT(r[0].status, 100);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK(BODY_IS(&p, &r[1], "[1,2]"));
  peer_close(&p);
  report("Expect: 100-continue");
}

/* Transfer-Encoding: chunked bodies, as curl -T - and Go's and Node's
 * clients stream them: the chunks come in several reads, the decoded body
 * is forwarded whole, and the connection stays open for the next request. */
static void t_chunked(void) {
  static const char head[] =
      "POST /Arith/Echo HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n";
  static const char cont_head[] =
      "PUT /Arith/Echo HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
  mrpc_buf_t gz = {0}, req = {0};
  char plain[3000], line[300];
  peer_t p;
  hresp_t r[3];
  backend_t *b;
  size_t off;
  int n;
  bk_reset(&A);
  bk_reset(&B);
  peer_open(&p, G.port);
  peer_send(&p, head, sizeof head - 1), sleep_ms(20); /* in three reads */
  peer_send(&p, "4;ext=1\r\n{\"A\"\r\n", 15), sleep_ms(20);
  peer_send(&p, "9\r\n:7,\"B\":8}\r\n", 14), sleep_ms(20);
  /* The last chunk, a trailer, and a pipelined Content-Length request (to
   * Who, which leaves the recorded payload alone). */
  snprintf(line, sizeof line, "0\r\nX-Sum: 1\r\n\r\n%s", post("/Arith/Who", "[1]"));
  CHECK_EQ_INT(EXCHANGE(&p, line, r, 2), 2);
  b = A.payload.len ? &A : &B; /* Who may have gone to the other one */
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(BODY_IS(&p, &r[0], "{\"A\":7,\"B\":8}"));
  CHECK_BUF(b->payload, "{\"A\":7,\"B\":8}");
  CHECK_EQ_INT(r[1].status, 200);
  CHECK(BODY_IS(&p, &r[1], "A") || BODY_IS(&p, &r[1], "B"));
  CHECK(!p.eof);
  peer_close(&p);
  /* PUT with Expect: 100-continue, as `curl -T -` sends it. */
  peer_open(&p, G.port);
  peer_send(&p, cont_head, sizeof cont_head - 1);
  WAITT(p.got.len >= 25, 3000);
  CHECK(p.got.len >= 25 && memcmp(p.got.data, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
  CHECK_EQ_INT(EXCHANGE(&p, "5\r\n[2,3]\r\n0\r\n\r\n", r, 2), 2);
  CHECK_EQ_INT(r[1].status, 200);
  CHECK(BODY_IS(&p, &r[1], "[2,3]"));
  peer_close(&p);
  /* rpcx's convention, a gzip body in two chunks: inflated once whole. */
  memset(plain, 'q', sizeof plain);
  CHECK_EQ_INT(mrpc_gzip_compress(&gz, plain, sizeof plain), 0);
  off = gz.len / 2;
  n = snprintf(line, sizeof line,
               "POST / HTTP/1.1\r\nX-RPCX-ServicePath: Arith\r\nX-RPCX-ServiceMethod: Echo\r\n"
               "X-RPCX-SerializeType: 0\r\nContent-Encoding: gzip\r\n"
               "Transfer-Encoding: chunked\r\n\r\n%zx\r\n", off);
  mrpc_buf_append(&req, line, (size_t)n);
  mrpc_buf_append(&req, gz.data, off);
  n = snprintf(line, sizeof line, "\r\n%zx\r\n", gz.len - off);
  mrpc_buf_append(&req, line, (size_t)n);
  mrpc_buf_append(&req, gz.data + off, gz.len - off);
  mrpc_buf_append(&req, "\r\n0\r\n\r\n", 7);
  bk_reset(&A);
  bk_reset(&B);
  peer_open(&p, G.port);
  CHECK_EQ_INT(exchange(&p, req.data, req.len, r, 1), 1);
  b = A.calls ? &A : &B;
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(body_is(&p, &r[0], plain, sizeof plain));
  CHECK_EQ_INT(b->payload.len, sizeof plain);
  peer_close(&p);
  mrpc_buf_free(&gz);
  mrpc_buf_free(&req);
  report("chunked bodies: JSON in several reads, then pipelined; curl's PUT; rpcx gzip");
}

static void t_refused(void) {
  static const char garbage[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
  mrpc_buf_t big = {0};
  char line[64];
  int i;
  expect_fatal(garbage, sizeof garbage - 1, 400);
  mrpc_buf_append(&big, "POST /Arith/Echo HTTP/1.1\r\nX-Big: ", 34);
  for (i = 0; i < 70000; i++) mrpc_buf_append(&big, "a", 1);
  expect_fatal(big.data, big.len, 431);
  big.len = 0;
  mrpc_buf_append(&big, "POST /Arith/Echo HTTP/1.1\r\n", 27);
  for (i = 0; i < 101; i++) {
    int n = snprintf(line, sizeof line, "X-H%d: v\r\n", i);
    mrpc_buf_append(&big, line, (size_t)n);
  }
  mrpc_buf_append(&big, "\r\n", 2);
  expect_fatal(big.data, big.len, 431);
  mrpc_buf_free(&big);
#define FATAL(s, st) expect_fatal(s, strlen(s), st)
  FATAL("POST /Arith/Echo HTTP/1.1\r\nContent-Length: 20000000\r\n\r\n", 413);
  FATAL("POST /Arith/Echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
  FATAL("POST /Arith/Echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000001\r\n", 413);
  FATAL("POST /Arith/Echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400);
  FATAL("POST /Arith/Echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n", 400);
  FATAL("POST /Arith/Echo HTTP/1.1\r\nNoColonHere\r\n\r\n", 400);
  FATAL("POST /Arith/Echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400);
  FATAL("POST /Arith/Echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400);
  FATAL("POST /Arith/Echo HTTP/2.0\r\n\r\n", 505);
  FATAL("POST  HTTP/1.1\r\n\r\n", 400);
  FATAL("POST /Arith/Echo HTTP/1.1\r\n Folded: x\r\n\r\n", 400);
#undef FATAL
  CHECK_EQ_INT(gwt_stats(&G).http_conns, 0);
  report("refused and closed: 400 garbage, 431, 413, 501 gzip, 400 malformed or chunked, 505");
}

static void t_peer_gone(void) {
  peer_t p;
  A.nheld = B.nheld = 0;
  peer_open(&p, G.port);
  post("/Arith/Hold", "{}");
  peer_send(&p, req_buf, strlen(req_buf));
  WAIT(A.nheld + B.nheld == 1);
  CHECK_EQ_INT(gwt_stats(&G).http_conns, 1);
  peer_close(&p);
  sleep_ms(20);
  CHECK_EQ_INT(gwt_stats(&G).inflight, 1); /* still forwarded */
  answer_held("late");
  WAIT(gwt_stats(&G).inflight == 0 && gwt_stats(&G).http_conns == 0);
  report("the peer gone while its call is forwarded: the late answer is dropped");
}

static void t_close_inflight(void) {
  peer_t p;
  hresp_t r[1];
  A.nheld = B.nheld = 0;
  peer_open(&p, G.port);
  post("/Arith/Hold", "{}");
  peer_send(&p, req_buf, strlen(req_buf));
  WAIT(A.nheld + B.nheld == 1);
  gwt_stop(&G);
  CHECK_EQ_INT(exchange(&p, NULL, 0, r, 1), 1);
  CHECK_EQ_INT(r[0].status, 503);
  CHECK(BODY_IS(&p, &r[0], "{\"error\":\"rpcx: gateway: closed\"}"));
  WAIT(p.eof);
  bk_drop_held(&A);
  bk_drop_held(&B);
  peer_close(&p);
  report("close with an HTTP call in flight: 503, then the connection closes");
}

static void quiet(void *ud, int level, const char *msg);

/* A gateway of its own with short HTTP timeouts: idle keep-alive
 * connections close, a head that trickles gets 408, a connection whose
 * request is forwarded is not timed out however long the instance takes. */
static void t_timeouts(void) {
  gwt_t g;
  mrpc_gateway_opts_t o;
  peer_t p, q, s;
  hresp_t r[2];
  uint64_t t0, took;
  memset(&o, 0, sizeof o);
  o.timeout_ms = 3000;
  o.log = quiet;
  o.http_idle_ms = 300;
  o.http_request_ms = 400;
  if (gwt_start(&g, reg_g, &o) < 0) return;
  /* Answered, kept alive, used again within the idle time, then closed. */
  peer_open(&p, g.port);
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Echo", "1"), r, 1), 1);
  CHECK_EQ_INT(r[0].status, 200);
  sleep_ms(150);
  CHECK(!p.eof);
  CHECK_EQ_INT(EXCHANGE(&p, post("/Arith/Echo", "2"), r, 2), 2);
  CHECK_EQ_INT(r[1].status, 200);
  t0 = uv_now(&loop);
  WAIT(p.eof);
  took = uv_now(&loop) - t0;
  CHECK(took >= 250 && took < 1500);
  CHECK_EQ_INT(parse_responses(&p.got, r, 2), 2); /* nothing more came */
  /* A connection that never sends a byte is not a request either... */
  peer_open(&q, g.port);
  /* ...but the gateway sees it only once bytes come: a raw connection to a
   * server is rpcx's until its first byte. Send the first bytes of a head
   * that never ends. */
  peer_send(&q, "POST /Arith/Echo HTTP/1.1\r\nHost: gw\r\n",
            strlen("POST /Arith/Echo HTTP/1.1\r\nHost: gw\r\n"));
  t0 = uv_now(&loop);
  CHECK_EQ_INT(exchange(&q, NULL, 0, r, 1), 1);
  took = uv_now(&loop) - t0;
  CHECK_EQ_INT(r[0].status, 408);
  CHECK(strcmp(hval(&q, &r[0], "Connection"), "close") == 0);
  CHECK(took >= 350 && took < 1500);
  WAIT(q.eof);
  /* A body that stops short of its Content-Length: 408 as well. */
  peer_open(&s, g.port);
  peer_send(&s, "POST /Arith/Echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345",
            strlen("POST /Arith/Echo HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"));
  CHECK_EQ_INT(exchange(&s, NULL, 0, r, 1), 1);
  CHECK_EQ_INT(r[0].status, 408);
  WAIT(s.eof);
  peer_close(&s);
  peer_close(&q);
  peer_close(&p);
  /* A forwarded request the instance holds for 3 idle times. */
  A.nheld = B.nheld = 0;
  peer_open(&p, g.port);
  post("/Arith/Hold", "{}");
  peer_send(&p, req_buf, strlen(req_buf));
  WAIT(A.nheld + B.nheld == 1);
  sleep_ms(900);
  CHECK(!p.eof);
  answer_held("\"late\"");
  CHECK_EQ_INT(exchange(&p, NULL, 0, r, 1), 1);
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(BODY_IS(&p, &r[0], "\"late\""));
  WAIT(p.eof); /* and idle again afterwards */
  peer_close(&p);
  WAIT(gwt_stats(&g).http_conns == 0);
  gwt_stop(&g);
  report("HTTP timeouts: idle keep-alive closed, a trickling head or body 408, a held call spared");
}

/* max_pipeline: at most that many requests of one connection are read
 * and forwarded before their answers; the rest wait, unread. */
static void t_pipeline_limit(void) {
  gwt_t g;
  mrpc_gateway_opts_t o;
  char req[4096];
  peer_t p;
  hresp_t r[5];
  int i, n = 0;
  memset(&o, 0, sizeof o);
  o.timeout_ms = 3000;
  o.log = quiet;
  o.max_pipeline = 2;
  if (gwt_start(&g, reg_g, &o) < 0) return;
  A.nheld = B.nheld = 0;
  for (i = 0; i < 5; i++)
    n += snprintf(req + n, sizeof req - (size_t)n, "%s", post("/Arith/Hold", "{}"));
  peer_open(&p, g.port);
  peer_send(&p, req, (size_t)n);
  WAIT(A.nheld + B.nheld == 2);
  sleep_ms(50);
  CHECK_EQ_INT(A.nheld + B.nheld, 2);
  CHECK_EQ_INT(gwt_stats(&g).inflight, 2);
  for (i = 0; i < 5; i++) {
    /* answering the oldest lets the next one in */
    WAIT(A.nheld + B.nheld >= 1);
    if (A.nheld) {
      mrpc_req_reply(A.held[0], "1", 1, NULL, 0);
      memmove(A.held, A.held + 1, (size_t)--A.nheld * sizeof A.held[0]);
    } else {
      mrpc_req_reply(B.held[0], "1", 1, NULL, 0);
      memmove(B.held, B.held + 1, (size_t)--B.nheld * sizeof B.held[0]);
    }
    CHECK(gwt_stats(&g).inflight <= 2);
  }
  CHECK_EQ_INT(exchange(&p, NULL, 0, r, 5), 5);
  for (i = 0; i < 5; i++) CHECK_EQ_INT(r[i].status, 200);
  peer_close(&p);
  gwt_stop(&g);
  report("max_pipeline: two requests of a connection forwarded at a time, the rest after");
}

static void on_drained(mrpc_server_t *s, void *ud) {
  CHECK(s != NULL);
  (*(int *)ud)++;
}

/* mrpc_server_shutdown on the gateway's server: the HTTP request in
 * flight is answered, then its connection closes; a request sent
 * meanwhile on another connection gets 503; idle ones close. */
static void t_graceful(void) {
  gwt_t g;
  mrpc_gateway_opts_t o;
  peer_t p, q;
  hresp_t r[2];
  int done = 0;
  memset(&o, 0, sizeof o);
  o.timeout_ms = 3000;
  o.log = quiet;
  if (gwt_start(&g, reg_g, &o) < 0) return;
  A.nheld = B.nheld = 0;
  peer_open(&q, g.port);
  CHECK_EQ_INT(EXCHANGE(&q, post("/Arith/Echo", "1"), r, 1), 1); /* kept alive */
  peer_open(&p, g.port);
  post("/Arith/Hold", "{}");
  peer_send(&p, req_buf, strlen(req_buf));
  WAIT(A.nheld + B.nheld == 1);
  CHECK_EQ_INT(mrpc_server_shutdown(g.s, 3000, on_drained, &done), 0);
  sleep_ms(50);
  CHECK_EQ_INT(done, 0);   /* waits for the HTTP request */
  CHECK(!p.eof);
  /* A pipelined request on the busy connection, while shutting down. */
  peer_send(&p, req_buf, strlen(req_buf));
  sleep_ms(20);
  answer_held("7");
  CHECK_EQ_INT(exchange(&p, NULL, 0, r, 2), 2);
  CHECK_EQ_INT(r[0].status, 200);
  CHECK(BODY_IS(&p, &r[0], "7"));
  CHECK_EQ_INT(r[1].status, 503);
  WAIT(p.eof && q.eof);
  WAIT(done == 1);
  CHECK_EQ_INT(parse_responses(&q.got, r, 2), 1); /* the idle one: nothing more */
  peer_close(&p);
  peer_close(&q);
  gwt_stop(&g);
  report("graceful shutdown: the HTTP call in flight answered, then 503, then closed");
}

static void quiet(void *ud, int level, const char *msg) {
  (void)ud;
  (void)level;
  (void)msg;
}

int main(void) {
  const char *url = registry_url("redis");
  mrpc_gateway_opts_t o;
  if (!url) {
    printf("SKIP: no Redis fixture ($MOONRPC_REDIS_DIR/addr; run through ctest)\n");
    return 77;
  }
  harness_start();
  printf("# registry %s\n", url);
  memset(&o, 0, sizeof o);
  o.timeout_ms = 3000;
  o.log = quiet;
  CHECK_EQ_INT(mrpc_registry_open(&loop, url, &reg_w), 0);
  CHECK_EQ_INT(mrpc_registry_open(&loop, url, &reg_g), 0);
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  if (bk_start(&A, "A") == 0 && bk_start(&B, "B") == 0 &&
      reg_add("Arith", &A, "") == 0 && reg_add("Arith", &B, "") == 0 &&
      gwt_start(&G, reg_g, &o) == 0) {
    t_json();
    t_json_errors();
    t_rpcx_style();
    t_gzip_body();
    t_pipeline();
    t_versions();
    t_expect_continue();
    t_chunked();
    t_refused();
    t_peer_gone();
    t_timeouts();
    t_pipeline_limit();
    t_graceful();
    t_close_inflight();
  } else {
    report("setup");
  }
  gwt_stop(&G);
  bk_free(&A);
  bk_free(&B);
  reg_close(&reg_w);
  reg_close(&reg_g);
  drain();
  return harness_finish();
}
