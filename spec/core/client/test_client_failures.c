/* test_client_failures.c: how a call ends when no reply comes: call
 * timeouts, cancel, connection loss, reconnect, connect refused,
 * heartbeats against a dead peer, closing the client with calls pending,
 * re-entrancy from callbacks, and a write to a reset connection.
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

/* ---- 1. a call timeout -------------------------------------------------- */

static void test_timeout(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r = {0}, after = {0};

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call_ex(c, "Echo", "Hold", "t", 1, 100, &r, NULL), 0);
  WAIT(H.nheld == 1);
  CHECK_EQ_INT(H.held_timeout, 100);
  CHECK(H.held_deadline != 0);
  WAIT(r.n == 1);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(r.status, MRPC_ETIMEDOUT);
  CHECK_EQ_INT(mrpc_client_pending(c), 0);
  /* The late reply arrives and is ignored; a call behind it still works. */
  CHECK_EQ_INT(reply_held(0, "late"), 0);
  CHECK_EQ_INT(call(c, "Echo", "after", &after), 0);
  WAIT(after.n == 1);
  CHECK_EQ_INT(after.status, 0);
  CHECK_BUF(after.payload, "after");
  CHECK_EQ_INT(r.n, 1);
  cli_close(c);
  srv_close(&v);
  drain();
  CHECK_EQ_INT(r.n, 1);
  rec_free(&r);
  rec_free(&after);
  report("call timeout: ETIMEDOUT once, late reply ignored, __ServerTimeout seen");
}

/* ---- 2. cancel ---------------------------------------------------------- */

static void test_cancel(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r = {0}, after = {0};
  uint64_t id = 0;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call_ex(c, "Echo", "Hold", "c", 1, 0, &r, &id), 0);
  WAIT(H.nheld == 1);
  CHECK_EQ_INT(mrpc_client_cancel(c, id), 0);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(r.status, MRPC_ECANCELED);
  CHECK_EQ_INT(mrpc_client_cancel(c, id), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_client_cancel(c, id + 1000), MRPC_EINVAL);
  CHECK_EQ_INT(reply_held(0, "late"), 0);
  CHECK_EQ_INT(call(c, "Echo", "after", &after), 0);
  WAIT(after.n == 1);
  CHECK_EQ_INT(after.status, 0);
  CHECK_EQ_INT(r.n, 1);
  cli_close(c);
  srv_close(&v);
  drain();
  CHECK_EQ_INT(r.n, 1);
  rec_free(&r);
  rec_free(&after);
  report("cancel: ECANCELED once; cancelling again gives EINVAL");
}

/* ---- 3. connection loss ------------------------------------------------- */

static void test_connlost(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r = {0};
  int closed = 0;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Hold", "h", &r), 0);
  WAIT(H.nheld == 1);
  mrpc_server_close(v.s, on_server_closed, &closed);
  v.s = NULL;
  WAIT(r.n == 1);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(r.status, MRPC_ECONNLOST);
  sleep_ms(20);
  CHECK_EQ_INT(closed, 0); /* the held request keeps the server */
  CHECK_EQ_INT(reply_held(0, "too late"), MRPC_ECONNLOST);
  WAIT(closed == 1);
  CHECK_EQ_INT(closed, 1);
  cli_close(c);
  drain();
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(closed, 1);
  rec_free(&r);
  report("server closed with a held call: ECONNLOST once, late answer safe");
}

/* ---- 4. reconnect ------------------------------------------------------- */

static void test_reconnect(void) {
  srv_t v, w;
  mrpc_client_t *c;
  rec_t a = {0}, b = {0};
  char addr[64];

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Echo", "one", &a), 0);
  WAIT(a.n == 1);
  CHECK_EQ_INT(a.status, 0);
  srv_close(&v);
  WAIT(!mrpc_client_connected(c)); /* the client saw the EOF */
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port_of(v.addr));
  srv_start(&w, NULL, addr);
  CHECK(strcmp(w.addr, v.addr) == 0);
  CHECK_EQ_INT(call(c, "Echo", "two", &b), 0);
  WAIT(b.n == 1);
  CHECK_EQ_INT(b.n, 1);
  CHECK_EQ_INT(b.status, 0);
  CHECK_BUF(b.payload, "two");
  cli_close(c);
  srv_close(&w);
  drain();
  CHECK_EQ_INT(a.n, 1);
  CHECK_EQ_INT(b.n, 1);
  rec_free(&a);
  rec_free(&b);
  report("reconnect: a new server on the same port serves the next call");
}

/* ---- 5. connect refused ------------------------------------------------- */

/* A port on 127.0.0.1 that nobody listens on (bound, then released). */
static int free_port(void) {
  uv_tcp_t t;
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  int n = sizeof ss, port = -1;

  uv_tcp_init(&loop, &t);
  uv_ip4_addr("127.0.0.1", 0, &sa);
  if (uv_tcp_bind(&t, (struct sockaddr *)&sa, 0) == 0 &&
      uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &n) == 0)
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return port;
}

/* One call to a closed port ends once with ECONNREFUSED, either from the
 * callback or (then with no callback) from the return value. */
static void refused_call(mrpc_client_t *c) {
  rec_t r = {0};
  int rc = call(c, "Echo", "x", &r);

  if (rc == 0) {
    WAIT(r.n == 1);
    CHECK_EQ_INT(r.status, UV_ECONNREFUSED);
  } else {
    CHECK_EQ_INT(rc, UV_ECONNREFUSED);
  }
  sleep_ms(20);
  CHECK_EQ_INT(r.n, rc == 0 ? 1 : 0);
  rec_free(&r);
}

static void test_refused(void) {
  mrpc_client_t *c;
  char addr[64];

  begin();
  snprintf(addr, sizeof addr, "tcp@127.0.0.1:%d", free_port());
  c = cli_new(addr, NULL);
  refused_call(c);
  refused_call(c); /* the next call tries again, and fails the same way */
  CHECK_EQ_INT(mrpc_client_connected(c), 0);
  cli_close(c);
  drain();
  report("connect refused: ECONNREFUSED exactly once");
}

/* ---- 6. heartbeat ------------------------------------------------------- */

/* A dead peer: accepts connections and never reads or answers. */
#define MAX_RAW 4
static uv_tcp_t raw_listener, raw_conns[MAX_RAW];
static int raw_accepted;

static void raw_on_connection(uv_stream_t *l, int status) {
  uv_tcp_t *t;

  if (status < 0 || raw_accepted >= MAX_RAW) return;
  t = &raw_conns[raw_accepted];
  uv_tcp_init(&loop, t);
  if (uv_accept(l, (uv_stream_t *)t) == 0) {
    raw_accepted++;
  } else {
    uv_close((uv_handle_t *)t, NULL);
  }
}

static void test_heartbeat(void) {
  srv_t v;
  mrpc_client_t *c, *d;
  mrpc_client_opts_t o;
  rec_t ping = {0}, live = {0}, r1 = {0}, r2 = {0};
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  int n = sizeof ss, i;
  uint64_t t0, elapsed;
  char addr[64];

  begin();
  /* A ping is echoed and measured. */
  srv_start(&v, NULL, "127.0.0.1:0");
  memset(&o, 0, sizeof o);
  o.heartbeat_interval_ms = 50;
  c = cli_new(v.addr, &o);
  CHECK_EQ_INT(mrpc_client_rtt(c), 0);
  CHECK_EQ_INT(mrpc_client_ping(c, 1000, on_call, &ping), 0);
  WAIT(ping.n == 1);
  CHECK_EQ_INT(ping.n, 1);
  CHECK_EQ_INT(ping.status, 0);
  CHECK(ping.flags & MRPC_FLAG_HEARTBEAT);
  CHECK(ping.flags & MRPC_FLAG_RESPONSE);
  CHECK(mrpc_client_rtt(c) > 0);
  /* With a live server, heartbeats keep the link up. */
  sleep_ms(250);
  CHECK_EQ_INT(mrpc_client_connected(c), 1);
  CHECK_EQ_INT(call(c, "Echo", "alive", &live), 0);
  WAIT(live.n == 1);
  CHECK_EQ_INT(live.status, 0);
  cli_close(c);
  srv_close(&v);

  /* A dead peer: the calls end with EHEARTBEAT. */
  raw_accepted = 0;
  uv_tcp_init(&loop, &raw_listener);
  uv_ip4_addr("127.0.0.1", 0, &sa);
  CHECK_EQ_INT(uv_tcp_bind(&raw_listener, (struct sockaddr *)&sa, 0), 0);
  CHECK_EQ_INT(uv_listen((uv_stream_t *)&raw_listener, 8, raw_on_connection), 0);
  CHECK_EQ_INT(uv_tcp_getsockname(&raw_listener, (struct sockaddr *)&ss, &n), 0);
  snprintf(addr, sizeof addr, "tcp@127.0.0.1:%d",
           ntohs(((struct sockaddr_in *)&ss)->sin_port));
  d = cli_new(addr, &o);
  uv_update_time(&loop);
  t0 = uv_now(&loop);
  CHECK_EQ_INT(call(d, "Echo", "1", &r1), 0);
  CHECK_EQ_INT(call(d, "Echo", "2", &r2), 0);
  WAIT(r1.n == 1 && r2.n == 1);
  elapsed = uv_now(&loop) - t0;
  CHECK_EQ_INT(r1.n, 1);
  CHECK_EQ_INT(r2.n, 1);
  CHECK_EQ_INT(r1.status, MRPC_EHEARTBEAT);
  CHECK_EQ_INT(r2.status, MRPC_EHEARTBEAT);
  CHECK_EQ_INT(raw_accepted, 1);
  /* Expected about 100 ms (one interval, then one timeout); generous. */
  if (elapsed > 1000) {
    fprintf(stderr, "    EHEARTBEAT took %llu ms\n", (unsigned long long)elapsed);
    cur_failed = 1;
  }
  cli_close(d);
  for (i = 0; i < raw_accepted; i++) uv_close((uv_handle_t *)&raw_conns[i], NULL);
  uv_close((uv_handle_t *)&raw_listener, NULL);
  drain();
  CHECK_EQ_INT(r1.n, 1);
  CHECK_EQ_INT(r2.n, 1);
  rec_free(&ping);
  rec_free(&live);
  rec_free(&r1);
  rec_free(&r2);
  report("heartbeat: ping echoed with an rtt; a dead peer gives EHEARTBEAT");
}

/* ---- 7. client close with pending calls --------------------------------- */

static void test_client_close(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r[4], trigger = {0};
  int closed = 0, i;

  begin();
  memset(r, 0, sizeof r);
  srv_start(&v, NULL, "127.0.0.1:0");

  /* From the host. */
  c = cli_new(v.addr, NULL);
  for (i = 0; i < 3; i++)
    CHECK_EQ_INT(call_ex(c, "Echo", "Hold", "h", 1, i == 0 ? 0 : 2000, &r[i], NULL), 0);
  WAIT(H.nheld == 3);
  mrpc_client_close(c, on_client_closed, &closed);
  for (i = 0; i < 3; i++) {
    CHECK_EQ_INT(r[i].n, 1);
    CHECK_EQ_INT(r[i].status, MRPC_ECLOSED);
  }
  WAIT(closed == 1);
  drop_held();

  /* From inside another call's callback. */
  H.nheld = 0;
  closed = 0;
  for (i = 0; i < 4; i++) {
    rec_free(&r[i]);
    memset(&r[i], 0, sizeof r[i]);
  }
  c = cli_new(v.addr, NULL);
  for (i = 0; i < 3; i++)
    CHECK_EQ_INT(call_ex(c, "Echo", "Hold", "h", 1, i == 0 ? 0 : 2000, &r[i], NULL), 0);
  trigger.close_c = c;
  trigger.close_flag = &closed;
  CHECK_EQ_INT(call(c, "Echo", "bye", &trigger), 0);
  CHECK_EQ_INT(call_ex(c, "Echo", "Echo", "after", 5, 0, &r[3], NULL), 0);
  WAIT(trigger.n == 1);
  CHECK_EQ_INT(trigger.status, 0);
  CHECK_BUF(trigger.payload, "bye");
  for (i = 0; i < 4; i++) {
    CHECK_EQ_INT(r[i].n, 1);
    CHECK_EQ_INT(r[i].status, MRPC_ECLOSED);
  }
  WAIT(closed == 1);
  CHECK_EQ_INT(closed, 1);
  srv_close(&v);
  drain();
  for (i = 0; i < 4; i++) CHECK_EQ_INT(r[i].n, 1);
  CHECK_EQ_INT(trigger.n, 1);
  for (i = 0; i < 4; i++) rec_free(&r[i]);
  rec_free(&trigger);
  report("client close: pending calls end with ECLOSED once, also from a cb");
}

/* ---- 8. re-entrancy ------------------------------------------------------ */

static void test_reentrant(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t a = {0}, t1 = {0}, t2 = {0}, h1 = {0}, e = {0};
  rec_t lost = {0}, again = {0}, k = {0}, gone = {0};
  uint64_t id1 = 0;
  char addr[64], peer[128];
  int closed = 0, rc;

  begin();
  /* Closing the client from a connect-refused callback. */
  snprintf(addr, sizeof addr, "tcp@127.0.0.1:%d", free_port());
  c = cli_new(addr, NULL);
  a.close_c = c;
  a.close_flag = &closed;
  rc = call(c, "Echo", "x", &a);
  if (rc == 0) {
    WAIT(a.n == 1 && closed == 1);
    CHECK_EQ_INT(a.status, UV_ECONNREFUSED);
  } else {
    CHECK_EQ_INT(rc, UV_ECONNREFUSED);
    cli_close(c);
  }

  /* Closing the client from a timeout callback, with a second call due at
   * the same moment. */
  srv_start(&v, NULL, "127.0.0.1:0");
  closed = 0;
  c = cli_new(v.addr, NULL);
  t1.close_c = c;
  t1.close_flag = &closed;
  CHECK_EQ_INT(call_ex(c, "Echo", "Hold", "1", 1, 50, &t1, NULL), 0);
  CHECK_EQ_INT(call_ex(c, "Echo", "Hold", "2", 1, 50, &t2, NULL), 0);
  WAIT(t1.n == 1 && t2.n == 1 && closed == 1);
  CHECK_EQ_INT(t1.status, MRPC_ETIMEDOUT);
  CHECK(t2.status == MRPC_ETIMEDOUT || t2.status == MRPC_ECLOSED);
  drop_held();

  /* Cancelling another call from inside a callback. */
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call_ex(c, "Echo", "Hold", "h", 1, 0, &h1, &id1), 0);
  e.cancel_c = c;
  e.cancel_id = id1;
  CHECK_EQ_INT(call(c, "Echo", "e", &e), 0);
  WAIT(e.n == 1);
  CHECK_EQ_INT(e.status, 0);
  CHECK_EQ_INT(e.cancel_rc, 0);
  CHECK_EQ_INT(h1.n, 1);
  CHECK_EQ_INT(h1.status, MRPC_ECANCELED);
  drop_held();

  /* A reply to a caller that has gone away. */
  H.nheld = 0;
  CHECK_EQ_INT(call(c, "Hold", "g", &gone), 0);
  WAIT(H.nheld == 1);
  cli_close(c);
  CHECK_EQ_INT(gone.n, 1);
  CHECK_EQ_INT(gone.status, MRPC_ECLOSED);
  WAIT(mrpc_req_remote(H.held[0], peer, sizeof peer) == MRPC_ECONNLOST);
  CHECK_EQ_INT(reply_held(0, "nobody"), MRPC_ECONNLOST);

  /* A new call from inside a connection-lost callback. */
  H.nheld = 0;
  c = cli_new(v.addr, NULL);
  lost.call_c = c;
  lost.call_rec = &again;
  CHECK_EQ_INT(call(c, "Hold", "l", &lost), 0);
  WAIT(H.nheld == 1);
  srv_close(&v); /* also drops the held request */
  WAIT(lost.n == 1);
  CHECK_EQ_INT(lost.status, MRPC_ECONNLOST);
  if (lost.call_rc == 0) {
    WAIT(again.n == 1);
    CHECK_EQ_INT(again.status, UV_ECONNREFUSED);
  } else {
    CHECK_EQ_INT(lost.call_rc, UV_ECONNREFUSED);
  }
  cli_close(c);

  /* The server closed from inside a handler. */
  srv_start(&v, NULL, "127.0.0.1:0");
  H.kill = &v;
  H.kill_rc = 1;
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Kill", "k", &k), 0);
  WAIT(k.n == 1 && v.closed == 1);
  CHECK_EQ_INT(k.status, MRPC_ECONNLOST);
  CHECK_EQ_INT(H.kill_rc, MRPC_ECONNLOST);
  CHECK_EQ_INT(v.closed, 1);
  cli_close(c);
  drain();
  CHECK_EQ_INT(a.n, rc == 0 ? 1 : 0);
  CHECK_EQ_INT(t1.n + t2.n + h1.n + e.n + gone.n + lost.n + k.n, 7);
  CHECK_EQ_INT(again.n, lost.call_rc == 0 ? 1 : 0);
  rec_free(&a);
  rec_free(&t1);
  rec_free(&t2);
  rec_free(&h1);
  rec_free(&e);
  rec_free(&lost);
  rec_free(&again);
  rec_free(&k);
  rec_free(&gone);
  report("re-entrancy: close, cancel and call from callbacks; close in a handler");
}

/* ---- 9. regression: a write to a reset connection ----------------------- */

/* The server closes; before the client has read the FIN it sends two calls.
 * The first is written and the peer answers with a reset; the second write
 * fails with EPIPE. Both calls must end once with MRPC_ECONNLOST (client.h),
 * not with the raw UV_EPIPE. */
static void test_epipe_is_connlost(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t first = {0}, r1 = {0}, r2 = {0};

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Echo", "up", &first), 0);
  WAIT(first.n == 1);
  CHECK_EQ_INT(first.status, 0);
  /* No loop turn between the close and the two calls. */
  mrpc_server_close(v.s, on_server_closed, &v.closed);
  v.s = NULL;
  CHECK_EQ_INT(call(c, "Echo", "one", &r1), 0);
  CHECK_EQ_INT(call(c, "Echo", "two", &r2), 0);
  WAIT(r1.n == 1 && r2.n == 1 && v.closed == 1);
  CHECK_EQ_INT(r1.status, MRPC_ECONNLOST);
  CHECK_EQ_INT(r2.status, MRPC_ECONNLOST);
  cli_close(c);
  drain();
  CHECK_EQ_INT(r1.n, 1);
  CHECK_EQ_INT(r2.n, 1);
  rec_free(&first);
  rec_free(&r1);
  rec_free(&r2);
  report("regression: a write to a reset connection ends calls with ECONNLOST");
}

int main(int argc, char **argv) {
  (void)argc; /* no vectors needed */
  (void)argv;
  harness_start();
  test_timeout();
  test_cancel();
  test_connlost();
  test_reconnect();
  test_refused();
  test_heartbeat();
  test_client_close();
  test_reentrant();
  test_epipe_is_connlost();
  return harness_finish();
}
