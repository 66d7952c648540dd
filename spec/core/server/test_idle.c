/* test_idle.c: the server's idle_timeout_ms (moonrpc/server.h). With a
 * timeout of 300 ms, three connections: one that sends nothing after its
 * first call is closed; one that sends a heartbeat every 100 ms is kept;
 * one whose call is still running in a slow handler (held for 900 ms) is
 * kept, gets its answer, and is closed only once idle after it. Without
 * the option (the default) a silent connection stays. The counter of
 * mrpc_server_stats counts the closes. Same harness as the other
 * transport tests (transport_harness.h). argv is ignored. */
#include "transport_harness.h"

static void on_ping(int status, const mrpc_frame_t *f, void *ud) {
  (void)f;
  if (status == 0) (*(int *)ud)++;
}

static mrpc_client_t *beating;
static int beats;

static void on_beat_tick(uv_timer_t *t) {
  (void)t;
  mrpc_client_ping(beating, 1000, on_ping, &beats);
}

static void test_idle_timeout(void) {
  srv_t v;
  mrpc_server_opts_t so;
  mrpc_server_stats_t st;
  mrpc_client_t *silent, *slow;
  rec_t r1 = {0}, r2 = {0}, r3 = {0}, after = {0};
  uv_timer_t tick;
  uint64_t t0;

  begin();
  memset(&so, 0, sizeof so);
  so.idle_timeout_ms = 300;
  srv_start(&v, &so, "127.0.0.1:0");
  silent = cli_new(v.addr, NULL);
  beating = cli_new(v.addr, NULL);
  slow = cli_new(v.addr, NULL);
  beats = 0;
  CHECK_EQ_INT(call(silent, "Echo", "a", &r1), 0);
  CHECK_EQ_INT(call(beating, "Echo", "b", &r2), 0);
  CHECK_EQ_INT(call(slow, "Hold", "c", &r3), 0);
  WAIT(r1.n == 1 && r2.n == 1 && H.hold == 1);
  CHECK_EQ_INT(mrpc_server_conn_count(v.s), 3);
  uv_timer_init(&loop, &tick);
  uv_timer_start(&tick, on_beat_tick, 100, 100);
  t0 = uv_now(&loop);
  sleep_ms(900);
  /* The silent one went (its client saw the loss), the other two stay. */
  CHECK(!mrpc_client_connected(silent));
  CHECK(mrpc_client_connected(beating));
  CHECK(mrpc_client_connected(slow));
  CHECK(beats >= 5);
  CHECK_EQ_INT(mrpc_server_conn_count(v.s), 2);
  mrpc_server_stats(v.s, &st);
  CHECK_EQ_INT(st.idle_closed, 1);
  /* The slow call is answered; its connection is idle from then on. */
  CHECK_EQ_INT(reply_held(0, "late"), 0);
  WAIT(r3.n == 1);
  CHECK_EQ_INT(r3.status, 0);
  CHECK_BUF(r3.payload, "late");
  WAITT(!mrpc_client_connected(slow), 2000);
  CHECK(uv_now(&loop) - t0 >= 900 + 300);
  CHECK(mrpc_client_connected(beating));
  mrpc_server_stats(v.s, &st);
  CHECK_EQ_INT(st.idle_closed, 2);
  /* A closed client reconnects on its next call, as after any loss. */
  CHECK_EQ_INT(call(silent, "Echo", "back", &after), 0);
  WAIT(after.n == 1);
  CHECK_EQ_INT(after.status, 0);
  uv_timer_stop(&tick);
  uv_close((uv_handle_t *)&tick, NULL);
  cli_close(silent);
  cli_close(beating);
  cli_close(slow);
  srv_close(&v);
  drain();
  rec_free(&r1);
  rec_free(&r2);
  rec_free(&r3);
  rec_free(&after);
  report("idle_timeout: a silent connection is closed, heartbeats and a slow call keep theirs");
}

static void test_idle_off_by_default(void) {
  srv_t v;
  mrpc_client_t *c;
  rec_t r = {0};
  mrpc_server_stats_t st;

  begin();
  srv_start(&v, NULL, "127.0.0.1:0");
  c = cli_new(v.addr, NULL);
  CHECK_EQ_INT(call(c, "Echo", "a", &r), 0);
  WAIT(r.n == 1);
  sleep_ms(400);
  CHECK(mrpc_client_connected(c));
  mrpc_server_stats(v.s, &st);
  CHECK_EQ_INT(st.idle_closed, 0);
  cli_close(c);
  srv_close(&v);
  drain();
  rec_free(&r);
  report("idle_timeout is off by default: a silent connection stays");
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  harness_start();
  test_idle_timeout();
  test_idle_off_by_default();
  return harness_finish();
}
