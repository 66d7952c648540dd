/* test_server.c: the server's side of the transport: oneway
 * requests, graceful shutdown and its timeout, the max_frame and
 * max_conns limits, unix sockets and the auth hook.
 *
 * Every scenario runs a server (mrpc_server_*) and one or more clients
 * (mrpc_client_*) on one uv_loop_t that this test owns, as a host would.
 * Each scenario counts the callback invocations of every call it makes, so
 * that "exactly once" is checked, not assumed; closes what it opened; runs
 * the loop until idle; and checks that no handle is left on the loop. A
 * watchdog timer fails a wait after 3 s instead of letting the test hang.
 * At the end uv_loop_close() must succeed. The harness is in
 * transport_harness.h. No vectors are needed; argv is ignored. */
#include "transport_harness.h"

/* ---- 1. oneway ---------------------------------------------------------- */

static void test_oneway(void) {
  srv_t v;
  mrpc_client_t *c;
  mrpc_call_args_t a;
  rec_t ow = {0}, r = {0};

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  memset(&a, 0, sizeof a);
  a.service = "Echo";
  a.method = "Echo";
  a.payload = "fire";
  a.payload_len = 4;
  a.oneway = 1;
  CHECK_EQ_INT(mrpc_client_call(c, &a, on_call, &ow, NULL), 0);
  CHECK_EQ_INT(mrpc_client_pending(c), 0);
  CHECK_EQ_INT(call(c, "Echo", "next", &r), 0);
  WAIT(r.n == 1);
  CHECK_EQ_INT(r.status, 0);
  CHECK_BUF(r.payload, "next");
  CHECK_EQ_INT(H.oneway, 1);
  CHECK_EQ_INT(H.echo, 2);
  sleep_ms(20);
  CHECK_EQ_INT(ow.n, 0);
  cli_close(c);
  srv_close(&v);
  drain();
  CHECK_EQ_INT(ow.n, 0);
  rec_free(&ow);
  rec_free(&r);
  report("oneway: the handler runs, no reply, no callback; next call works");
}

/* ---- 2. graceful shutdown ----------------------------------------------- */

static void on_shutdown(mrpc_server_t *s, void *flag) {
  CHECK(s != NULL);
  on_flag(flag);
}

static void test_shutdown(void) {
  srv_t v;
  mrpc_client_t *c, *c2;
  rec_t held = {0}, late = {0}, fresh = {0};
  int sd = 0, rc;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Hold", "held", &held), 0);
  WAIT(H.nheld == 1);
  CHECK_EQ_INT(mrpc_server_shutdown(v.s, 1000, on_shutdown, &sd), 0);
  CHECK_EQ_INT(sd, 0);
  CHECK(mrpc_server_shutdown(v.s, 1000, on_shutdown, &sd) < 0); /* once only */
  /* The listener is closed: a new connection is refused. */
  c2 = cli_new(v.addr, NULL);
  rc = call(c2, "Echo", "new", &fresh);
  if (rc == 0) {
    WAIT(fresh.n == 1);
    CHECK_EQ_INT(fresh.status, UV_ECONNREFUSED);
  } else {
    CHECK_EQ_INT(rc, UV_ECONNREFUSED);
  }
  /* A request on an open connection is turned away. */
  CHECK_EQ_INT(call(c, "Echo", "meanwhile", &late), 0);
  WAIT(late.n == 1);
  CHECK_EQ_INT(late.status, 0);
  CHECK_BUF(late.err, "server is shutting down");
  CHECK_EQ_INT(sd, 0);
  /* The held call's reply still goes out; then the callback runs. */
  CHECK_EQ_INT(reply_held(0, "done"), 0);
  WAIT(held.n == 1);
  CHECK_EQ_INT(held.n, 1);
  CHECK_EQ_INT(held.status, 0);
  CHECK_BUF(held.payload, "done");
  WAIT(sd == 1);
  CHECK_EQ_INT(sd, 1);
  srv_close(&v);
  cli_close(c);
  cli_close(c2);
  drain();
  CHECK_EQ_INT(sd, 1);
  CHECK_EQ_INT(held.n, 1);
  CHECK_EQ_INT(late.n, 1);
  CHECK_EQ_INT(fresh.n, rc == 0 ? 1 : 0);
  rec_free(&held);
  rec_free(&late);
  rec_free(&fresh);
  report("graceful shutdown: listener closed, held reply delivered, then cb");
}

/* ---- 3. shutdown timeout ------------------------------------------------ */

static void test_shutdown_timeout(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t held = {0};
  int sd = 0, rc;
  uint64_t t0;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Hold", "held", &held), 0);
  WAIT(H.nheld == 1);
  t0 = uv_now(&loop);
  CHECK_EQ_INT(mrpc_server_shutdown(v.s, 100, on_shutdown, &sd), 0);
  WAIT(sd == 1);
  CHECK_EQ_INT(sd, 1);
  CHECK(uv_now(&loop) - t0 >= 100);
  CHECK_EQ_INT(mrpc_server_inflight(v.s), 1);
  /* The abandoned call's connection is closed: the client sees it. */
  WAIT(held.n == 1);
  CHECK_EQ_INT(held.status, MRPC_ECONNLOST);
  rc = reply_held(0, "never");
  CHECK_EQ_INT(rc, MRPC_ECONNLOST);
  srv_close(&v);
  cli_close(c);
  drain();
  CHECK_EQ_INT(sd, 1);
  CHECK_EQ_INT(held.n, 1);
  rec_free(&held);
  report("shutdown timeout: the callback runs with a call still held");
}

/* ---- 4. a frame past max_frame ------------------------------------------ */

static void test_max_frame(void) {
  srv_t v;
  mrpc_server_opts_t so;
  mrpc_client_t *c, *c2;
  rec_t big = {0}, ok = {0};
  char *pay = malloc(4096);

  begin();
  memset(pay, 'b', 4096);
  memset(&so, 0, sizeof so);
  so.limits.max_frame = 1024;
  srv_start(&v, &so, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  c2 = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call_ex(c, "Echo", "Echo", pay, 4096, 0, &big, NULL), 0);
  WAIT(big.n == 1);
  CHECK_EQ_INT(big.n, 1);
  CHECK_EQ_INT(big.status, MRPC_ECONNLOST);
  CHECK(strstr(H.last_log, "ETOOBIG") != NULL);
  CHECK_EQ_INT(call(c2, "Echo", "small", &ok), 0);
  WAIT(ok.n == 1);
  CHECK_EQ_INT(ok.status, 0);
  CHECK_BUF(ok.payload, "small");
  CHECK_EQ_INT(H.echo, 1);
  cli_close(c);
  cli_close(c2);
  srv_close(&v);
  drain();
  CHECK_EQ_INT(big.n, 1);
  free(pay);
  rec_free(&big);
  rec_free(&ok);
  report("frame past max_frame: connection closed, server serves others");
}

/* ---- 4b. a peer that does not read (backpressure: test_backpressure.c) --- */

/* A raw TCP peer that sends requests and never reads its answers. */
typedef struct deaf_s {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  mrpc_buf_t out;
  int connected, written, closed;
} deaf_t;

static void deaf_written(uv_write_t *w, int status) {
  deaf_t *d = w->data;
  d->written = status == 0 ? 1 : -1;
}

static void deaf_connected(uv_connect_t *req, int status) {
  deaf_t *d = req->data;
  uv_buf_t b = uv_buf_init(d->out.data, (unsigned)d->out.len);
  d->connected = status == 0 ? 1 : -1;
  if (status != 0) return;
  d->wreq.data = d;
  uv_write(&d->wreq, (uv_stream_t *)&d->tcp, &b, 1, deaf_written);
}

static void deaf_closed(uv_handle_t *h) { ((deaf_t *)h->data)->closed = 1; }

/* Connects a deaf peer to `port` and sends `count` Echo.Echo requests of
 * `size` bytes each. */
static void deaf_start(deaf_t *d, int port, const char *pay, size_t size, int count) {
  mrpc_frame_t f;
  struct sockaddr_in sa;
  int i;
  memset(d, 0, sizeof *d);
  memset(&f, 0, sizeof f);
  f.serialize = MRPC_SERIALIZE_NONE << 4;
  f.path = f.method = "Echo";
  f.path_len = f.method_len = 4;
  f.payload = pay;
  f.payload_len = size;
  for (i = 0; i < count; i++) {
    f.seq = (uint64_t)i;
    CHECK_EQ_INT(mrpc_frame_encode(&d->out, &f), 0);
  }
  uv_tcp_init(&loop, &d->tcp);
  d->tcp.data = d;
  d->creq.data = d;
  uv_ip4_addr("127.0.0.1", port, &sa);
  CHECK_EQ_INT(uv_tcp_connect(&d->creq, &d->tcp, (struct sockaddr *)&sa, deaf_connected), 0);
}

/* ---- 4c. regression: shutdown lost replies still being written ------------ */

static void deaf_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char buf[65536];
  (void)h;
  (void)n;
  *b = uv_buf_init(buf, sizeof buf);
}

static size_t deaf_got;
static int deaf_eof;

static void deaf_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  (void)st;
  (void)b;
  if (n > 0) deaf_got += (size_t)n;
  else if (n < 0) deaf_eof = 1;
}

static void on_shut(mrpc_server_t *s, void *flag) {
  (void)s;
  (*(int *)flag)++;
}

/* The shutdown callback came before the connections had written their
 * replies, and closing the server then cut them off (a peer reading slowly
 * got a few of 8 MiB of replies). */
static void test_shutdown_writes_replies_first(void) {
  srv_t v;
  deaf_t d;
  size_t size = 1024 * 1024, frame_len = 16 + 8 + 8 + 4 + 4 + size;
  char *pay = malloc(size);
  int shut = 0;

  begin();
  memset(pay, 's', size);
  deaf_got = 0;
  deaf_eof = 0;
  srv_start(&v, NULL, "127.0.0.1:0");
  deaf_start(&d, port_of(v.addr), pay, size, 8);
  WAIT(H.echo == 8);
  CHECK_EQ_INT(H.echo, 8);
  CHECK_EQ_INT(mrpc_server_shutdown(v.s, 3000, on_shut, &shut), 0);
  sleep_ms(100); /* the peer has not read yet: no callback */
  CHECK_EQ_INT(shut, 0);
  uv_read_start((uv_stream_t *)&d.tcp, deaf_alloc, deaf_read);
  WAIT(shut == 1 && deaf_eof);
  CHECK_EQ_INT(shut, 1);
  CHECK_EQ_INT(deaf_got, 8 * frame_len);
  uv_close((uv_handle_t *)&d.tcp, deaf_closed);
  WAIT(d.closed == 1);
  srv_close(&v);
  drain();
  mrpc_buf_free(&d.out);
  free(pay);
  report("regression: shutdown writes every reply before its callback");
}

/* ---- 5. max_conns ------------------------------------------------------- */

static void test_max_conns(void) {
  srv_t v;
  mrpc_server_opts_t so;
  mrpc_client_t *c[3];
  rec_t r[3], again[2];
  int i;

  begin();
  memset(r, 0, sizeof r);
  memset(again, 0, sizeof again);
  memset(&so, 0, sizeof so);
  so.limits.max_conns = 2;
  srv_start(&v, &so, "127.0.0.1:0");
  for (i = 0; i < 3; i++) c[i] = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c[0], "Echo", "a", &r[0]), 0);
  CHECK_EQ_INT(call(c[1], "Echo", "b", &r[1]), 0);
  WAIT(r[0].n == 1 && r[1].n == 1);
  CHECK_EQ_INT(mrpc_server_conn_count(v.s), 2);
  CHECK_EQ_INT(call(c[2], "Echo", "c", &r[2]), 0);
  WAIT(r[2].n == 1);
  CHECK_EQ_INT(r[0].status, 0);
  CHECK_EQ_INT(r[1].status, 0);
  CHECK_EQ_INT(r[2].n, 1);
  CHECK_EQ_INT(r[2].status, MRPC_ECONNLOST);
  CHECK(strstr(H.last_log, "max_conns") != NULL);
  /* The first two still work. */
  CHECK_EQ_INT(call(c[0], "Echo", "a2", &again[0]), 0);
  CHECK_EQ_INT(call(c[1], "Echo", "b2", &again[1]), 0);
  WAIT(again[0].n == 1 && again[1].n == 1);
  CHECK_EQ_INT(again[0].status, 0);
  CHECK_EQ_INT(again[1].status, 0);
  CHECK_BUF(again[1].payload, "b2");
  CHECK_EQ_INT(H.echo, 4);
  for (i = 0; i < 3; i++) cli_close(c[i]);
  srv_close(&v);
  drain();
  for (i = 0; i < 3; i++) {
    CHECK_EQ_INT(r[i].n, 1);
    rec_free(&r[i]);
  }
  for (i = 0; i < 2; i++) rec_free(&again[i]);
  report("max_conns = 2: a third connection is closed, the first two work");
}

/* ---- 6. unix sockets ---------------------------------------------------- */

static void test_unix(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r = {0};
  char path[128], want[160];

  begin();
  snprintf(path, sizeof path, "/tmp/moonrpc-test-transport-%d.sock", (int)getpid());
  unlink(path);
  srv_new(&v, NULL);
  CHECK_EQ_INT(mrpc_server_listen(v.s, "unix", path), 0);
  CHECK_EQ_INT(mrpc_server_address(v.s, 0, v.addr, sizeof v.addr), 0);
  snprintf(want, sizeof want, "unix@%s", path);
  CHECK(strcmp(v.addr, want) == 0);
  CHECK_EQ_INT(access(path, F_OK), 0);
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Echo", "over a pipe", &r), 0);
  WAIT(r.n == 1);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(r.status, 0);
  CHECK_BUF(r.payload, "over a pipe");
  cli_close(c);
  srv_close(&v);
  drain();
  CHECK(access(path, F_OK) != 0); /* the server removed its socket file */
  unlink(path);
  rec_free(&r);
  report("unix socket: listen, call, socket file removed on close");
}

/* ---- 7. auth ------------------------------------------------------------ */

/* The server's auth hook: "s3cret" passes; any other token is refused
 * with "bad token", a missing one with the server's default message. */
static int auth_hook(mrpc_req_t *req, const char *token, size_t len,
                     void *ud, char *err, size_t errlen) {
  (void)req;
  (void)ud;
  if (token == NULL) return 1; /* no message: the server's default */
  if (len == 6 && memcmp(token, "s3cret", 6) == 0) return 0;
  snprintf(err, errlen, "bad token");
  return 1;
}

static void auth_call(mrpc_client_t *c, const char *token, rec_t *r) {
  mrpc_meta_t m;
  mrpc_call_args_t a;

  memset(&a, 0, sizeof a);
  a.service = "Echo";
  a.method = "Echo";
  a.payload = "in";
  a.payload_len = 2;
  if (token) {
    m.key = MRPC_META_AUTH;
    m.key_len = strlen(MRPC_META_AUTH);
    m.val = token;
    m.val_len = strlen(token);
    a.meta = &m;
    a.meta_count = 1;
  }
  CHECK_EQ_INT(mrpc_client_call(c, &a, on_call, r, NULL), 0);
}

static void test_auth(void) {
  srv_t v;
  mrpc_server_opts_t so;
  mrpc_client_t *c;
  rec_t wrong = {0}, none = {0}, right = {0};

  begin();
  memset(&so, 0, sizeof so);
  so.auth = auth_hook;
  srv_start(&v, &so, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);

  auth_call(c, "guess", &wrong);
  WAIT(wrong.n == 1);
  CHECK_EQ_INT(wrong.status, 0);
  CHECK_EQ_INT(wrong.flags & MRPC_FLAG_STATUS, MRPC_STATUS_ERROR);
  CHECK_BUF(wrong.err, "bad token");
  WAIT(!mrpc_client_connected(c)); /* then the server closes */

  auth_call(c, NULL, &none);
  WAIT(none.n == 1);
  CHECK_EQ_INT(none.status, 0);
  CHECK_BUF(none.err, "auth failed");
  WAIT(!mrpc_client_connected(c));
  CHECK_EQ_INT(H.echo, 0);

  auth_call(c, "s3cret", &right);
  WAIT(right.n == 1);
  CHECK_EQ_INT(right.status, 0);
  CHECK_EQ_INT(right.flags & MRPC_FLAG_STATUS, MRPC_STATUS_NORMAL);
  CHECK_BUF(right.payload, "in");
  CHECK_EQ_INT(H.echo, 1);
  sleep_ms(20);
  CHECK_EQ_INT(mrpc_client_connected(c), 1);
  cli_close(c);
  srv_close(&v);
  drain();
  CHECK_EQ_INT(wrong.n, 1);
  CHECK_EQ_INT(none.n, 1);
  rec_free(&wrong);
  rec_free(&none);
  rec_free(&right);
  report("auth: a wrong or missing token is refused and closed; right one works");
}

int main(int argc, char **argv) {
  (void)argc; /* no vectors needed */
  (void)argv;
  harness_start();
  test_oneway();
  test_shutdown();
  test_shutdown_timeout();
  test_max_frame();
  test_shutdown_writes_replies_first();
  test_max_conns();
  test_unix();
  test_auth();
  return harness_finish();
}
