/* test_backpressure.c: max_write_queue, both ways (contracts in server.h,
 * client.h and transport.h):
 *
 *   1. a raw peer pipelines requests and never reads: the server stops
 *      reading that connection once its queued answers reach the limit, the
 *      queue stays bounded, the connection stays open and another client is
 *      served; when the peer reads, reading resumes and every answer
 *      arrives, in order;
 *   2. output that grows anyway (server pushes to a peer that reads
 *      nothing) closes the connection with MRPC_ESLOWPEER past the hard cap
 *      max_write_queue + max_frame;
 *   3. a client whose server never reads: a new call fails at once with
 *      MRPC_ESLOWPEER, the calls already sent are untouched, and calls go
 *      through again once the server reads.
 *
 * The 30 s RSS soak of the same is test_backpressure_soak.c. Same harness
 * as the other transport tests (transport_harness.h). argv is ignored. */
#include "transport_harness.h"

/* ---- a raw peer ----------------------------------------------------------- */

/* A raw TCP peer: sends what is in `out`, reads only when told to, and then
 * decodes the answers. */
typedef struct peer_s {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  mrpc_buf_t out;
  mrpc_decoder_t dec;
  int connected, written, closed, eof;
  int got;           /* answers decoded */
  int in_order;      /* every answer's seq was the next expected */
  size_t got_bytes;
} peer_t;

static void peer_written(uv_write_t *w, int status) {
  peer_t *p = w->data;
  p->written = status == 0 ? 1 : -1;
}

static void peer_connected(uv_connect_t *req, int status) {
  peer_t *p = req->data;
  uv_buf_t b = uv_buf_init(p->out.data, (unsigned)p->out.len);
  p->connected = status == 0 ? 1 : -1;
  if (status != 0 || p->out.len == 0) return;
  p->wreq.data = p;
  uv_write(&p->wreq, (uv_stream_t *)&p->tcp, &b, 1, peer_written);
}

static void peer_closed(uv_handle_t *h) { ((peer_t *)h->data)->closed = 1; }

static void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  peer_t *p = h->data;
  char *at;
  size_t room;
  CHECK_EQ_INT(mrpc_decoder_reserve(&p->dec, n, &at, &room), 0);
  *b = uv_buf_init(at, (unsigned)room);
}

static void peer_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  peer_t *p = st->data;
  mrpc_frame_t f;
  (void)b;
  if (n < 0) {
    p->eof = 1;
    return;
  }
  mrpc_decoder_commit(&p->dec, (size_t)n);
  p->got_bytes += (size_t)n;
  while (mrpc_decoder_next(&p->dec, &f) == 1) {
    if (f.seq != (uint64_t)p->got) p->in_order = 0;
    p->got++;
  }
}

/* Connects to `port` and sends `count` requests `svc`.`method` (seq 0, 1,
 * ...) with a payload of `size` bytes. */
static void peer_start(peer_t *p, int port, const char *svc, const char *method,
                       size_t size, int count) {
  mrpc_frame_t f;
  struct sockaddr_in sa;
  char *pay = malloc(size ? size : 1);
  int i;
  memset(p, 0, sizeof *p);
  memset(pay, 'q', size);
  p->in_order = 1;
  mrpc_decoder_init(&p->dec, NULL);
  memset(&f, 0, sizeof f);
  f.serialize = MRPC_SERIALIZE_NONE << 4;
  f.path = svc;
  f.path_len = strlen(svc);
  f.method = method;
  f.method_len = strlen(method);
  f.payload = pay;
  f.payload_len = size;
  for (i = 0; i < count; i++) {
    f.seq = (uint64_t)i;
    CHECK_EQ_INT(mrpc_frame_encode(&p->out, &f), 0);
  }
  free(pay);
  uv_tcp_init(&loop, &p->tcp);
  p->tcp.data = p;
  p->creq.data = p;
  uv_ip4_addr("127.0.0.1", port, &sa);
  CHECK_EQ_INT(uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&sa, peer_connected), 0);
}

static void peer_close(peer_t *p) {
  uv_close((uv_handle_t *)&p->tcp, peer_closed);
  WAIT(p->closed == 1);
  mrpc_buf_free(&p->out);
  mrpc_decoder_free(&p->dec);
}

static mrpc_server_stats_t stats_of(srv_t *v) {
  mrpc_server_stats_t st;
  mrpc_server_stats(v->s, &st);
  return st;
}

/* ---- 1. the server pauses a peer that does not read ------------------------ */

static void test_server_pauses(void) {
  srv_t v;
  mrpc_server_opts_t so;
  mrpc_server_stats_t st;
  mrpc_client_t *c;
  rec_t ok = {0};
  peer_t p;
  const size_t limit = 256 * 1024, size = 64 * 1024;
  const int count = 400; /* 25 MiB of answers: more than kernel buffers hold */
  int echo_paused;

  begin();
  memset(&so, 0, sizeof so);
  so.limits.max_write_queue = (uint32_t)limit;
  srv_start(&v, &so, "127.0.0.1:0");
  peer_start(&p, port_of(v.addr), "Echo", "Echo", size, count);
  WAIT(stats_of(&v).paused == 1);
  st = stats_of(&v);
  CHECK_EQ_INT(st.paused, 1);
  sleep_ms(200); /* paused for good: nothing more is read */
  echo_paused = H.echo;
  st = stats_of(&v);
  CHECK_EQ_INT(st.paused, 1);
  CHECK(echo_paused < count);
  CHECK_EQ_INT(mrpc_server_conn_count(v.s), 1);
  /* Bounded: the limit, plus the answers to one read's requests. */
  CHECK(st.queued >= limit);
  CHECK(st.queued_peak <= limit + 2 * (size + 256));
  sleep_ms(100);
  CHECK_EQ_INT(H.echo, echo_paused);
  /* Another client is served meanwhile. */
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Echo", "still here", &ok), 0);
  WAIT(ok.n == 1);
  CHECK_EQ_INT(ok.status, 0);
  CHECK_BUF(ok.payload, "still here");
  /* The peer reads: reading resumes and every answer arrives, in order. */
  uv_read_start((uv_stream_t *)&p.tcp, peer_alloc, peer_read);
  WAITT(p.got == count, 10000);
  CHECK_EQ_INT(p.got, count);
  CHECK(p.in_order);
  CHECK_EQ_INT(H.echo, count + 1);
  st = stats_of(&v);
  CHECK_EQ_INT(st.paused, 0);
  CHECK_EQ_INT(st.queued, 0);
  CHECK(st.queued_peak <= limit + 2 * (size + 256));
  CHECK_EQ_INT(p.eof, 0);
  peer_close(&p);
  cli_close(c);
  srv_close(&v);
  drain();
  rec_free(&ok);
  report("a peer that never reads is paused at max_write_queue, resumed when it reads, all answered in order");
}

/* ---- 2. the hard cap: pushes to a peer that reads nothing ------------------ */

static mrpc_conn_t *grabbed;

/* Push.Grab: keeps the caller's connection for pushing, answers "ok". */
static void h_grab(mrpc_req_t *req, void *ud) {
  (void)ud;
  grabbed = mrpc_req_conn(req);
  mrpc_conn_hold(grabbed);
  mrpc_req_reply(req, "ok", 2, NULL, 0);
}

static void test_push_hard_cap(void) {
  srv_t v;
  mrpc_server_opts_t so;
  mrpc_frame_t f;
  peer_t p;
  size_t size = 32 * 1024;
  char *pay = malloc(size);
  int i, pushed = 0;

  begin();
  grabbed = NULL;
  memset(pay, 'p', size);
  memset(&so, 0, sizeof so);
  so.limits.max_write_queue = 64 * 1024;
  so.limits.max_frame = 64 * 1024; /* hard cap: 128 KiB */
  srv_start(&v, &so, "127.0.0.1:0");
  CHECK_EQ_INT(mrpc_server_register(v.s, "Push", "Grab", h_grab, NULL), 0);
  peer_start(&p, port_of(v.addr), "Push", "Grab", 0, 1);
  WAIT(grabbed != NULL);
  memset(&f, 0, sizeof f);
  f.path = f.method = "Feed";
  f.path_len = f.method_len = 4;
  f.payload = pay;
  f.payload_len = size;
  /* 4000 pushes of 32 KiB: 128 MiB, far past the kernel's buffers. */
  for (i = 0; i < 4000 && grabbed && mrpc_conn_is_open(grabbed); i++)
    if (mrpc_conn_push(grabbed, &f, 0) == 0) pushed++;
  CHECK(grabbed && !mrpc_conn_is_open(grabbed));
  CHECK(pushed < 4000);
  CHECK(strstr(H.last_log, "ESLOWPEER") != NULL);
  CHECK_EQ_INT(mrpc_conn_push(grabbed, &f, 0), MRPC_ECONNLOST);
  WAIT(mrpc_server_conn_count(v.s) == 1); /* freed only after the release */
  mrpc_conn_release(grabbed);
  WAIT(mrpc_server_conn_count(v.s) == 0);
  CHECK_EQ_INT(mrpc_server_conn_count(v.s), 0);
  peer_close(&p);
  srv_close(&v);
  drain();
  free(pay);
  report("pushes past max_write_queue + max_frame close the connection with ESLOWPEER");
}

/* ---- 3. the client refuses calls to a server that does not read ------------ */

typedef struct mute_s {
  uv_tcp_t lis, conn;
  int accepted, closed;
  size_t got;
} mute_t;

static void mute_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char buf[65536];
  (void)h;
  (void)n;
  *b = uv_buf_init(buf, sizeof buf);
}

static void mute_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  mute_t *m = st->data;
  (void)b;
  if (n > 0) m->got += (size_t)n;
}

static void mute_on_conn(uv_stream_t *lis, int status) {
  mute_t *m = lis->data;
  if (status < 0 || m->accepted) return;
  uv_tcp_init(&loop, &m->conn);
  m->conn.data = m;
  CHECK_EQ_INT(uv_accept(lis, (uv_stream_t *)&m->conn), 0);
  m->accepted = 1; /* and never reads, until told */
}

static void mute_closed(uv_handle_t *h) { ((mute_t *)h->data)->closed++; }

static void test_client_refuses(void) {
  mute_t m;
  struct sockaddr_in sa;
  int nl = sizeof sa, i, n = 0, rc = 0;
  char addr[64];
  mrpc_client_opts_t co;
  mrpc_client_t *c;
  static rec_t r[2000];
  rec_t late = {0}, after = {0};
  size_t size = 64 * 1024;
  char *pay = malloc(size);

  begin();
  memset(&m, 0, sizeof m);
  memset(r, 0, sizeof r);
  memset(pay, 'c', size);
  uv_tcp_init(&loop, &m.lis);
  m.lis.data = &m;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  CHECK_EQ_INT(uv_tcp_bind(&m.lis, (struct sockaddr *)&sa, 0), 0);
  CHECK_EQ_INT(uv_listen((uv_stream_t *)&m.lis, 8, mute_on_conn), 0);
  uv_tcp_getsockname(&m.lis, (struct sockaddr *)&sa, &nl);
  snprintf(addr, sizeof addr, "tcp@127.0.0.1:%d", ntohs(sa.sin_port));
  memset(&co, 0, sizeof co);
  co.limits.max_write_queue = 256 * 1024;
  c = cli_new(addr, &co);
  CHECK_EQ_INT(mrpc_client_connect(c), 0);
  WAIT(m.accepted && mrpc_client_connected(c));
  /* Call until refused: the kernel takes a few MiB first. */
  for (i = 0; i < 2000; i++) {
    rc = call_ex(c, "Echo", "Echo", pay, size, 0, &r[i], NULL);
    if (rc != 0) break;
    n++;
  }
  CHECK_EQ_INT(rc, MRPC_ESLOWPEER);
  CHECK(n > 0 && n < 2000);
  CHECK_EQ_INT(call_ex(c, "Echo", "Echo", pay, size, 0, &late, NULL), MRPC_ESLOWPEER);
  sleep_ms(50);
  CHECK(mrpc_client_connected(c)); /* the connection stays up */
  CHECK_EQ_INT(mrpc_client_pending(c), n);
  for (i = 0; i < n; i++) CHECK_EQ_INT(r[i].n, 0);
  CHECK_EQ_INT(late.n, 0);
  /* The server reads: calls go through again. */
  uv_read_start((uv_stream_t *)&m.conn, mute_alloc, mute_read);
  WAITT(mrpc_client_pending(c) == (size_t)n &&
        m.got >= (size_t)n * size, 10000);
  sleep_ms(20);
  CHECK_EQ_INT(call_ex(c, "Echo", "Echo", "x", 1, 0, &after, NULL), 0);
  cli_close(c);
  for (i = 0; i < n; i++) {
    CHECK_EQ_INT(r[i].n, 1);
    CHECK_EQ_INT(r[i].status, MRPC_ECLOSED);
  }
  CHECK_EQ_INT(after.n, 1);
  CHECK_EQ_INT(late.n, 0);
  uv_close((uv_handle_t *)&m.conn, mute_closed);
  uv_close((uv_handle_t *)&m.lis, mute_closed);
  WAIT(m.closed == 2);
  drain();
  for (i = 0; i < n; i++) rec_free(&r[i]);
  rec_free(&late);
  rec_free(&after);
  free(pay);
  report("a client whose server does not read refuses new calls with ESLOWPEER, then recovers");
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  harness_start();
  test_server_pauses();
  test_push_hard_cap();
  test_client_refuses();
  return harness_finish();
}
