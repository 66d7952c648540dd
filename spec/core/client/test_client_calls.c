/* test_client_calls.c: calls between a server and a client over
 * loopback: a basic call, deferred replies, many concurrent calls, rpcx's
 * error replies (unknown service, method or codec), handler errors, gzip.
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

/* ---- 1. a basic call ---------------------------------------------------- */

static void test_basic(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r = {0};
  uint64_t id = 99;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(mrpc_client_connected(c), 0);
  CHECK_EQ_INT(call_ex(c, "Echo", "Echo", "hello", 5, 0, &r, &id), 0);
  CHECK_EQ_INT(r.n, 0); /* never from inside mrpc_client_call */
  CHECK_EQ_INT(mrpc_client_pending(c), 1);
  WAIT(r.n == 1);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(r.status, 0);
  CHECK_BUF(r.payload, "hello");
  CHECK_BUF(r.path, "Echo");
  CHECK_BUF(r.method, "Echo");
  CHECK_EQ_INT(r.seq, id);
  CHECK(r.flags & MRPC_FLAG_RESPONSE);
  CHECK_EQ_INT(r.flags & MRPC_FLAG_STATUS, MRPC_STATUS_NORMAL);
  CHECK_EQ_INT(r.serialize >> 4, MRPC_SERIALIZE_NONE);
  CHECK_EQ_INT(r.err.len, 0);
  CHECK_EQ_INT(H.echo, 1);
  CHECK_EQ_INT(mrpc_client_pending(c), 0);
  CHECK_EQ_INT(mrpc_client_connected(c), 1);
  CHECK(strcmp(mrpc_client_address(c), v.addr) == 0);
  CHECK_EQ_INT(mrpc_server_conn_count(v.s), 1);
  CHECK_EQ_INT(mrpc_server_inflight(v.s), 0);
  cli_close(c);
  srv_close(&v);
  drain();
  rec_free(&r);
  report("basic call: raw payload, seq, path and method echoed");
}

/* ---- 2. a deferred reply ------------------------------------------------ */

static void test_deferred(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t slow = {0}, fast = {0};

  begin();
  uv_timer_init(&loop, &later_timer);
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Later", "slow", &slow), 0);
  CHECK_EQ_INT(call(c, "Echo", "fast", &fast), 0);
  WAIT(slow.n == 1 && fast.n == 1);
  CHECK_EQ_INT(slow.n, 1);
  CHECK_EQ_INT(fast.n, 1);
  CHECK_EQ_INT(slow.status, 0);
  CHECK_EQ_INT(fast.status, 0);
  CHECK_BUF(slow.payload, "slow");
  CHECK_BUF(fast.payload, "fast");
  CHECK(fast.order < slow.order);
  CHECK_EQ_INT(H.later, 1);
  cli_close(c);
  srv_close(&v);
  uv_close((uv_handle_t *)&later_timer, NULL);
  drain();
  CHECK_EQ_INT(slow.n, 1);
  CHECK_EQ_INT(fast.n, 1);
  rec_free(&slow);
  rec_free(&fast);
  report("deferred reply from a timer; a later fast call completes first");
}

/* ---- 3. many concurrent calls ------------------------------------------- */

#define NCALLS 1000

static void test_concurrent(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t *r = calloc(NCALLS, sizeof *r);
  char pay[64];
  int i, done = 0, bad = 0;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  for (i = 0; i < NCALLS; i++) {
    r[i].done = &done;
    snprintf(pay, sizeof pay, "call-%d-%d", i, i * 7919);
    CHECK_EQ_INT(call(c, "Echo", pay, &r[i]), 0);
  }
  CHECK_EQ_INT(mrpc_client_pending(c), NCALLS);
  WAIT(done == NCALLS);
  CHECK_EQ_INT(done, NCALLS);
  for (i = 0; i < NCALLS; i++) {
    snprintf(pay, sizeof pay, "call-%d-%d", i, i * 7919);
    if (r[i].n != 1 || r[i].status != 0 || r[i].payload.len != strlen(pay) ||
        memcmp(r[i].payload.data, pay, strlen(pay)) != 0)
      bad++;
  }
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(H.echo, NCALLS);
  CHECK_EQ_INT(mrpc_client_pending(c), 0);
  cli_close(c);
  srv_close(&v);
  drain();
  for (i = 0; i < NCALLS; i++) rec_free(&r[i]);
  free(r);
  report("1000 concurrent calls on one client, each with its own payload");
}

/* ---- 4. rpcx's error replies -------------------------------------------- */

static void test_unknown(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t a = {0}, b = {0}, d = {0};
  mrpc_call_args_t args;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call_ex(c, "Nope", "Echo", "x", 1, 0, &a, NULL), 0);
  CHECK_EQ_INT(call_ex(c, "Echo", "Nope", "x", 1, 0, &b, NULL), 0);
  memset(&args, 0, sizeof args);
  args.service = "Echo";
  args.method = "Echo";
  args.payload = "x";
  args.payload_len = 1;
  args.serialize = 9;
  CHECK_EQ_INT(mrpc_client_call(c, &args, on_call, &d, NULL), 0);
  WAIT(a.n && b.n && d.n);
  CHECK_EQ_INT(a.n, 1);
  CHECK_EQ_INT(b.n, 1);
  CHECK_EQ_INT(d.n, 1);
  CHECK_EQ_INT(a.status, 0);
  CHECK_EQ_INT(a.flags & MRPC_FLAG_STATUS, MRPC_STATUS_ERROR);
  CHECK_BUF(a.err, "rpcx: can't find service Nope");
  CHECK_EQ_INT(b.status, 0);
  CHECK_EQ_INT(b.flags & MRPC_FLAG_STATUS, MRPC_STATUS_ERROR);
  CHECK_BUF(b.err, "rpcx: can't find method Nope");
  CHECK_EQ_INT(d.status, 0);
  CHECK_EQ_INT(d.flags & MRPC_FLAG_STATUS, MRPC_STATUS_ERROR);
  CHECK_BUF(d.err, "can not find codec for 9");
  CHECK_EQ_INT(H.echo, 0);
  cli_close(c);
  srv_close(&v);
  drain();
  rec_free(&a);
  rec_free(&b);
  rec_free(&d);
  report("unknown service, method and codec: rpcx's error texts");
}

/* ---- 5. a handler error with a payload ---------------------------------- */

static void test_handler_error(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r = {0};

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Fail", "in", &r), 0);
  WAIT(r.n == 1);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(r.status, 0);
  CHECK_EQ_INT(r.flags & MRPC_FLAG_STATUS, MRPC_STATUS_ERROR);
  CHECK_BUF(r.err, "boom");
  CHECK_BUF(r.payload, "partial");
  cli_close(c);
  srv_close(&v);
  drain();
  rec_free(&r);
  report("handler error with a payload: status error, message and payload");
}

/* ---- 6. gzip ------------------------------------------------------------ */

static void test_gzip(void) {
  srv_t v;
  mrpc_client_t *c;
  mrpc_call_args_t a;
  rec_t big = {0}, small = {0};
  char *pay = malloc(5000);
  int i;

  begin();
  for (i = 0; i < 5000; i++) pay[i] = (char)('a' + (i * 7 + i / 13) % 26);
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  memset(&a, 0, sizeof a);
  a.service = "Echo";
  a.method = "Echo";
  a.payload = pay;
  a.payload_len = 5000;
  a.gzip = 1;
  CHECK_EQ_INT(mrpc_client_call(c, &a, on_call, &big, NULL), 0);
  a.payload_len = 100; /* under the threshold: sent and answered plain */
  CHECK_EQ_INT(mrpc_client_call(c, &a, on_call, &small, NULL), 0);
  WAIT(big.n == 1 && small.n == 1);
  CHECK_EQ_INT(big.status, 0);
  CHECK_EQ_INT(big.payload.len, 5000);
  CHECK(big.payload.len == 5000 && memcmp(big.payload.data, pay, 5000) == 0);
  CHECK_EQ_INT((big.flags >> 2) & 7, MRPC_COMPRESS_GZIP);
  CHECK(big.wire_len < 5000);
  CHECK_EQ_INT(small.status, 0);
  CHECK(small.payload.len == 100 && memcmp(small.payload.data, pay, 100) == 0);
  CHECK_EQ_INT((small.flags >> 2) & 7, MRPC_COMPRESS_NONE);
  CHECK_EQ_INT(small.wire_len, 100);
  cli_close(c);
  srv_close(&v);
  drain();
  free(pay);
  rec_free(&big);
  rec_free(&small);
  report("gzip: 5000 bytes round trip, the reply is gzipped too");
}

int main(int argc, char **argv) {
  (void)argc; /* no vectors needed */
  (void)argv;
  harness_start();
  test_basic();
  test_deferred();
  test_concurrent();
  test_unknown();
  test_handler_error();
  test_gzip();
  return harness_finish();
}
