/* test_client_idle.c: an idle client does not keep its host's loop
 * running (issue 14: a script's moonrpc.run() never returned while an
 * xclient connection was open). The client lives on a loop of its own,
 * `cloop`, so uv_loop_alive(&cloop) sees only the client's handles; the
 * server runs on the harness's `loop`, and pump() turns both.
 *
 * The contract (moonrpc/client.h, mrpc_client_new): the client's handles
 * are referenced only while a call or a ping of the host's is pending;
 * heartbeats do not count. The harness is in transport_harness.h. */
#include "transport_harness.h"

static uv_loop_t cloop;

/* Turns both loops until `cond` holds or 3 s pass. */
#define PUMP(cond)                                                          \
  do {                                                                      \
    uint64_t end_ = uv_hrtime() + 3000000000ull;                            \
    while (!(cond) && uv_hrtime() < end_) {                                 \
      uv_run(&loop, UV_RUN_NOWAIT);                                         \
      uv_run(&cloop, UV_RUN_NOWAIT);                                        \
      usleep(1000);                                                         \
    }                                                                       \
    CHECK(cond);                                                            \
  } while (0)

static void close_client(mrpc_client_t *c) {
  int closed = 0;
  mrpc_client_close(c, on_client_closed, &closed);
  PUMP(closed == 1);
  CHECK_EQ_INT(uv_loop_alive(&cloop), 0);
}

static void on_ping(int status, const mrpc_frame_t *f, void *ud) {
  (void)f;
  *(int *)ud = status == 0 ? 1 : status;
}

static void test_idle(int heartbeat) {
  srv_t v;
  mrpc_client_t *c = NULL;
  mrpc_client_opts_t o;
  rec_t r = {0}, held = {0};
  int ping = 0;

  begin();
  memset(&o, 0, sizeof o);
  o.heartbeat_interval_ms = heartbeat;
  o.heartbeat_timeout_ms = heartbeat ? 1000 : 0;
  srv_start(&v, NULL, "127.0.0.1:0");
  CHECK_EQ_INT(mrpc_client_new(&cloop, v.addr, &o, &c), 0);
  CHECK_EQ_INT(uv_loop_alive(&cloop), 0); /* nothing pending: not alive */

  CHECK_EQ_INT(call(c, "Echo", "hi", &r), 0);
  CHECK_EQ_INT(uv_loop_alive(&cloop), 1); /* a pending call holds the loop */
  PUMP(r.n == 1);
  CHECK_EQ_INT(r.status, 0);
  CHECK_EQ_INT(mrpc_client_connected(c), 1);
  PUMP(uv_loop_alive(&cloop) == 0); /* connected and idle: not alive */
  if (heartbeat) {                  /* heartbeats go on, the loop stays free */
    uint64_t end = uv_hrtime() + 3ull * heartbeat * 1000000;
    while (uv_hrtime() < end) {
      uv_run(&loop, UV_RUN_NOWAIT);
      uv_run(&cloop, UV_RUN_NOWAIT);
      usleep(1000);
    }
    CHECK_EQ_INT(mrpc_client_connected(c), 1);
    CHECK_EQ_INT(uv_run(&cloop, UV_RUN_DEFAULT), 0); /* returns at once */
  }

  CHECK_EQ_INT(call(c, "Hold", "x", &held), 0); /* pending until answered */
  PUMP(H.nheld == 1);
  CHECK_EQ_INT(uv_loop_alive(&cloop), 1);
  CHECK_EQ_INT(reply_held(0, "done"), 0);
  PUMP(held.n == 1);
  PUMP(uv_loop_alive(&cloop) == 0);

  CHECK_EQ_INT(mrpc_client_ping(c, 1000, on_ping, &ping), 0);
  CHECK_EQ_INT(uv_loop_alive(&cloop), 1); /* a ping of the host's holds it too */
  PUMP(ping != 0);
  CHECK_EQ_INT(ping, 1);
  PUMP(uv_loop_alive(&cloop) == 0);

  close_client(c);
  srv_close(&v);
  drain();
  rec_free(&r);
  rec_free(&held);
  report(heartbeat ? "idle with heartbeats: the client's loop is free, a call or ping holds it"
                   : "idle: the client's loop is free, a call or ping holds it");
}

int main(int argc, char **argv) {
  (void)argc; /* no vectors needed */
  (void)argv;
  harness_start();
  CHECK_EQ_INT(uv_loop_init(&cloop), 0);
  test_idle(0);
  test_idle(50);
  CHECK_EQ_INT(uv_loop_close(&cloop), 0);
  return harness_finish();
}
