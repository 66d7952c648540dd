/* test_server_conn.c: what a host does with a server's connections
 * beyond answering requests: server push to a held connection (rpcx's
 * SendMessage), the fallback handler for services not registered (what a
 * gateway forwards), the foreign hook that lets one port answer a
 * protocol other than rpcx (HTTP) while rpcx clients keep working, and the
 * reflection service every server answers.
 *
 * Same harness as the other transport tests (transport_harness.h): one
 * loop owned by the test, every callback counted, every handle closed and
 * checked at the end. argv is ignored. */
#include "transport_harness.h"

/* ---- 1. server push ----------------------------------------------------- */

typedef struct push_s {
  mrpc_conn_t *held;
  int n;
  mrpc_buf_t path, method, payload, meta_val;
  uint64_t seq[4];
  uint8_t flags;
} push_t;

static push_t P;

/* Push.Subscribe: keeps the caller's connection and answers "ok". */
static void h_subscribe(mrpc_req_t *req, void *ud) {
  push_t *p = ud;
  p->held = mrpc_req_conn(req);
  mrpc_conn_hold(p->held);
  CHECK_EQ_INT(mrpc_req_reply(req, "ok", 2, NULL, 0), 0);
}

static void on_push(mrpc_client_t *c, const mrpc_frame_t *f, void *ud) {
  push_t *p = ud;
  const mrpc_meta_t *m = mrpc_frame_meta_get(f, "topic");
  (void)c;
  if (p->n < 4) p->seq[p->n] = f->seq;
  p->n++;
  p->flags = f->flags;
  buf_set(&p->path, f->path, f->path_len);
  buf_set(&p->method, f->method, f->method_len);
  buf_set(&p->payload, f->payload, f->payload_len);
  if (m) buf_set(&p->meta_val, m->val, m->val_len);
}

static int push_one(mrpc_conn_t *conn, const char *payload, size_t len) {
  mrpc_meta_t meta = {"topic", 5, "news", 4};
  mrpc_frame_t f;
  memset(&f, 0, sizeof f);
  f.path = "Feed";
  f.path_len = 4;
  f.method = "Changed";
  f.method_len = 7;
  f.meta = &meta;
  f.meta_count = 1;
  f.payload = payload;
  f.payload_len = len;
  f.serialize = MRPC_SERIALIZE_JSON << 4;
  return mrpc_conn_push(conn, &f, 1);
}

static void test_push(void) {
  srv_t v;
  mrpc_client_t *c;
  mrpc_client_opts_t o;
  rec_t r = {0};
  char big[3000];
  int rc;

  begin();
  memset(&P, 0, sizeof P);
  srv_start(&v, NULL, "127.0.0.1:0");
  CHECK_EQ_INT(mrpc_server_register(v.s, "Push", "Subscribe", h_subscribe, &P), 0);
  memset(&o, 0, sizeof o);
  o.on_push = on_push;
  o.push_udata = &P;
  c = cli_new(v.addr, &o);
  CHECK_EQ_INT(call_ex(c, "Push", "Subscribe", "", 0, 0, &r, NULL), 0);
  WAIT(r.n == 1);
  CHECK_EQ_INT(r.status, 0);
  CHECK(P.held != NULL);
  CHECK(mrpc_conn_is_open(P.held));
  CHECK(mrpc_conn_server(P.held) == v.s);

  CHECK_EQ_INT(push_one(P.held, "{\"a\":1}", 7), 0);
  WAIT(P.n == 1);
  CHECK_BUF(P.path, "Feed");
  CHECK_BUF(P.method, "Changed");
  CHECK_BUF(P.payload, "{\"a\":1}");
  CHECK_BUF(P.meta_val, "news");
  CHECK(P.flags & MRPC_FLAG_ONEWAY);
  CHECK(!(P.flags & MRPC_FLAG_RESPONSE));
  /* A large push is gzipped on the wire and arrives whole. */
  memset(big, 'x', sizeof big);
  CHECK_EQ_INT(push_one(P.held, big, sizeof big), 0);
  WAIT(P.n == 2);
  CHECK_EQ_INT(P.payload.len, sizeof big);
  CHECK(P.seq[1] == P.seq[0] + 1);
  /* The client goes: pushing fails cleanly, the hold keeps the memory. */
  cli_close(c);
  WAIT(!mrpc_conn_is_open(P.held));
  rc = push_one(P.held, "x", 1);
  CHECK_EQ_INT(rc, MRPC_ECONNLOST);
  mrpc_conn_release(P.held);
  srv_close(&v);
  drain();
  rec_free(&r);
  mrpc_buf_free(&P.path);
  mrpc_buf_free(&P.method);
  mrpc_buf_free(&P.payload);
  mrpc_buf_free(&P.meta_val);
  report("server push to a held connection; ECONNLOST once the client left");
}

/* ---- 2. the fallback handler --------------------------------------------- */

static int fallback_n;

static void h_fallback(mrpc_req_t *req, void *ud) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  char out[200];
  int n;
  (void)ud;
  fallback_n++;
  n = snprintf(out, sizeof out, "fallback %.*s.%.*s", (int)f->path_len, f->path,
               (int)f->method_len, f->method);
  mrpc_req_reply(req, out, (size_t)n, NULL, 0);
}

static void test_fallback(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t a = {0}, b = {0}, d = {0};

  begin();
  fallback_n = 0;
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  /* Without a fallback: rpcx's error. */
  CHECK_EQ_INT(call_ex(c, "Nope", "X", "", 0, 0, &a, NULL), 0);
  WAIT(a.n == 1);
  CHECK_BUF(a.err, "rpcx: can't find service Nope");
  mrpc_server_set_fallback(v.s, h_fallback, NULL);
  CHECK_EQ_INT(call_ex(c, "Nope", "Any", "", 0, 0, &b, NULL), 0);
  CHECK_EQ_INT(call(c, "Echo", "still", &d), 0);
  WAIT(b.n == 1 && d.n == 1);
  CHECK_BUF(b.payload, "fallback Nope.Any");
  CHECK_EQ_INT(b.err.len, 0);
  CHECK_BUF(d.payload, "still"); /* registered services are not affected */
  CHECK_EQ_INT(fallback_n, 1);
  cli_close(c);
  srv_close(&v);
  drain();
  rec_free(&a);
  rec_free(&b);
  rec_free(&d);
  report("fallback handler takes unknown services; registered ones unchanged");
}

/* ---- 3. the foreign hook --------------------------------------------------- */

typedef struct raw_s {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  mrpc_buf_t got;
  int eof, closed;
} raw_t;

typedef struct foreign_s {
  mrpc_buf_t seen;
  int calls, closes;
} foreign_t;

static foreign_t F;

/* Answers once a blank line has arrived, then closes. */
static void h_foreign(mrpc_conn_t *c, const char *data, size_t len, void *ud) {
  foreign_t *f = ud;
  static const char resp[] = "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  char peer[80];
  if (!data) {
    f->closes++;
    return;
  }
  f->calls++;
  {
    mrpc_frame_t none;
    memset(&none, 0, sizeof none);
    CHECK_EQ_INT(mrpc_conn_push(c, &none, 0), MRPC_EINVAL); /* not rpcx */
  }
  mrpc_buf_append(&f->seen, data, len);
  if (f->seen.len >= 4 && memcmp(f->seen.data + f->seen.len - 4, "\r\n\r\n", 4) == 0) {
    CHECK_EQ_INT(mrpc_conn_peer(c, peer, sizeof peer), 0);
    CHECK(strncmp(peer, "127.0.0.1:", 10) == 0);
    CHECK_EQ_INT(mrpc_conn_write(c, resp, sizeof resp - 1), 0);
    mrpc_conn_close(c);
  }
}

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char space[4096];
  (void)h;
  (void)n;
  *b = uv_buf_init(space, sizeof space);
}

static void raw_closed(uv_handle_t *h) { ((raw_t *)h->data)->closed = 1; }

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  raw_t *r = s->data;
  if (n > 0) mrpc_buf_append(&r->got, b->base, (size_t)n);
  if (n < 0) {
    r->eof = 1;
    uv_close((uv_handle_t *)s, raw_closed);
  }
}

static void raw_written(uv_write_t *w, int status) {
  (void)w;
  CHECK_EQ_INT(status, 0);
}

static void raw_connected(uv_connect_t *req, int status) {
  raw_t *r = req->data;
  static char msg1[] = "GET / HTTP/1.0\r\n";
  static char msg2[] = "Host: x\r\n\r\n";
  uv_buf_t b[2];
  CHECK_EQ_INT(status, 0);
  if (status < 0) return;
  b[0] = uv_buf_init(msg1, sizeof msg1 - 1);
  b[1] = uv_buf_init(msg2, sizeof msg2 - 1);
  uv_write(&r->wreq, (uv_stream_t *)&r->tcp, b, 2, raw_written);
  uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

static void test_foreign(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t a = {0};
  raw_t r;
  struct sockaddr_in sa;

  begin();
  memset(&F, 0, sizeof F);
  memset(&r, 0, sizeof r);
  srv_new(&v, NULL);
  mrpc_server_set_foreign(v.s, h_foreign, &F);
  CHECK_EQ_INT(mrpc_server_listen(v.s, "tcp", "127.0.0.1:0"), 0);
  CHECK_EQ_INT(mrpc_server_address(v.s, 0, v.addr, sizeof v.addr), 0);
  /* rpcx on the same port. */
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Echo", "rpcx", &a), 0);
  WAIT(a.n == 1);
  CHECK_BUF(a.payload, "rpcx");
  /* Something else on the same port. */
  uv_ip4_addr("127.0.0.1", port_of(v.addr), &sa);
  uv_tcp_init(&loop, &r.tcp);
  r.tcp.data = &r;
  r.creq.data = &r;
  uv_tcp_connect(&r.creq, &r.tcp, (const struct sockaddr *)&sa, raw_connected);
  WAIT(r.closed && F.closes == 1);
  CHECK_BUF(r.got, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  CHECK_BUF(F.seen, "GET / HTTP/1.0\r\nHost: x\r\n\r\n");
  CHECK(F.calls >= 1);
  CHECK_EQ_INT(F.closes, 1);
  CHECK_EQ_INT(mrpc_client_connected(c), 1); /* untouched */
  cli_close(c);
  srv_close(&v);
  drain();
  rec_free(&a);
  mrpc_buf_free(&r.got);
  mrpc_buf_free(&F.seen);
  report("foreign hook: HTTP bytes on the rpcx port, rpcx clients unaffected");
}

/* ---- 4. reflection ---------------------------------------------------------- */

static void test_reflection(void) {
  srv_t v, w;
  mrpc_server_opts_t o;
  mrpc_client_t *c, *d;
  rec_t a = {0}, b = {0}, m = {0};
  mrpc_call_args_t args;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  CHECK_EQ_INT(mrpc_server_set_metadata(v.s, "Echo", "weight=3&group=a"), 0);
  CHECK_EQ_INT(mrpc_server_set_metadata(v.s, "Nope", "x"), MRPC_ENOSERVICE);
  c = cli_new(v.addr, NULL);
  memset(&args, 0, sizeof args);
  args.service = "Reflection";
  args.method = "Services";
  args.serialize = MRPC_SERIALIZE_JSON;
  CHECK_EQ_INT(mrpc_client_call(c, &args, on_call, &a, NULL), 0);
  args.serialize = MRPC_SERIALIZE_MSGPACK;
  CHECK_EQ_INT(mrpc_client_call(c, &args, on_call, &m, NULL), 0);
  WAIT(a.n == 1 && m.n == 1);
  CHECK_BUF(a.payload, "{\"services\":[{\"name\":\"Echo\",\"methods\":[\"Echo\",\"Fail\",\"Hold\","
                       "\"Kill\",\"Later\"],\"metadata\":\"weight=3&group=a\"}]}");
  CHECK(m.payload.len > 10 && (unsigned char)m.payload.data[0] == 0x81); /* a msgpack map */
  /* Turned off: rpcx's answer for a service that is not there. */
  memset(&o, 0, sizeof o);
  o.no_reflection = 1;
  srv_start(&w, &o, "127.0.0.1:0");
  d = cli_new(w.addr, NULL);
  args.serialize = MRPC_SERIALIZE_JSON;
  CHECK_EQ_INT(mrpc_client_call(d, &args, on_call, &b, NULL), 0);
  WAIT(b.n == 1);
  CHECK_BUF(b.err, "rpcx: can't find service Reflection");
  cli_close(c);
  cli_close(d);
  srv_close(&v);
  srv_close(&w);
  drain();
  rec_free(&a);
  rec_free(&b);
  rec_free(&m);
  report("reflection: services, sorted methods and metadata, JSON or msgpack; off on request");
}

int main(void) {
  harness_start();
  test_push();
  test_fallback();
  test_foreign();
  test_reflection();
  return harness_finish();
}
