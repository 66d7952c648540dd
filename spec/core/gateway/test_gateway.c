/* test_gateway.c: the gateway (moonrpc/gateway.h) with rpcx frames, against
 * real backend servers on loopback registered in a real registry: Redis
 * from the ctest fixture for every scenario, then a shorter run against
 * etcd (when its fixture runs too) and the embedded moonrpc:// registry,
 * so the gateway is seen to work through the generic interface alone.
 *
 * Scenarios: forwarding with payload bytes unchanged and sequence numbers
 * remapped (two clients whose seqs overlap), gzip and the serialize type
 * kept, round robin across two instances, metadata both ways (and
 * __ServerTimeout never doubled), a remote error passed through, rpcx's
 * own "can't find method", oneway, a heartbeat answered by the gateway,
 * no instance, a bad service name, a timeout, an instance leaving the
 * registry (its connection closed) and coming back, an instance killed
 * (Failover to the other, calls in flight too), WeightedRoundRobin by
 * the registry's weight= metadata, a registry that never answers (the wait bounded by the timeout and max_waiting), and close
 * with calls in flight (each ends exactly once). HTTP is in
 * test_gateway_http.c. */
#include "gateway_harness.h"
#include "gateway_calls.h"

static backend_t A, B;
static gwt_t G;

/* ---- setup ------------------------------------------------------------------- */

static int setup(const char *url, const mrpc_gateway_opts_t *o) {
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  CHECK_EQ_INT(mrpc_registry_open(&loop, url, &reg_w), 0);
  CHECK_EQ_INT(mrpc_registry_open(&loop, url, &reg_g), 0);
  if (!reg_w || !reg_g) return -1;
  if (bk_start(&A, "A") != 0 || bk_start(&B, "B") != 0) return -1;
  CHECK_EQ_INT(reg_add("Arith", &A, "weight=1"), 0);
  CHECK_EQ_INT(reg_add("Arith", &B, "weight=1"), 0);
  return gwt_start(&G, reg_g, o);
}

static void teardown(void) {
  gwt_stop(&G);
  bk_free(&A);
  bk_free(&B);
  reg_close(&reg_w);
  reg_close(&reg_g);
  registry_stop();
  drain();
}

/* ---- scenarios ---------------------------------------------------------------- */

static void t_forward(void) {
  mrpc_client_t *c1 = cli_new(G.addr, NULL), *c2 = cli_new(G.addr, NULL);
  grec_t r1[4], r2[4];
  char pay1[4][300], pay2[4][300];
  uint64_t id1[4], id2[4];
  gargs_t g;
  int i, j, ok = 1;
  bk_reset(&A);
  bk_reset(&B);
  memset(r1, 0, sizeof r1);
  memset(r2, 0, sizeof r2);
  memset(&g, 0, sizeof g);
  g.method = "Echo";
  g.len = sizeof pay1[0];
  for (i = 0; i < 4; i++) {
    for (j = 0; j < 300; j++) { /* every byte value, the magic byte and NULs too */
      pay1[i][j] = (char)((i * 7 + j * 13) & 0xff);
      pay2[i][j] = (char)((i * 11 + j * 3 + 1) & 0xff);
    }
    g.payload = pay1[i];
    CHECK_EQ_INT(gcall(c1, &g, &r1[i], &id1[i]), 0);
    g.payload = pay2[i];
    CHECK_EQ_INT(gcall(c2, &g, &r2[i], &id2[i]), 0);
  }
  for (i = 0; i < 4; i++) WAITT(r1[i].n == 1 && r2[i].n == 1, 5000);
  for (i = 0; i < 4; i++) {
    CHECK_EQ_INT(id1[i], id2[i]); /* the two callers' seqs overlap */
    CHECK_EQ_INT(r1[i].status, 0);
    CHECK_EQ_INT(r2[i].status, 0);
    CHECK_EQ_INT(r1[i].seq, id1[i]); /* each answer carries its caller's seq */
    CHECK_EQ_INT(r2[i].seq, id2[i]);
    ok &= r1[i].payload.len == 300 && memcmp(r1[i].payload.data, pay1[i], 300) == 0;
    ok &= r2[i].payload.len == 300 && memcmp(r2[i].payload.data, pay2[i], 300) == 0;
    CHECK_EQ_INT(r1[i].serialize, 0);
  }
  CHECK(ok);
  CHECK_EQ_INT(A.calls + B.calls, 8);
  CHECK(distinct(A.seqs, A.nseqs)); /* remapped: unique on each backend link */
  CHECK(distinct(B.seqs, B.nseqs));
  for (i = 0; i < 4; i++) {
    grec_free(&r1[i]);
    grec_free(&r2[i]);
  }
  cli_close(c1);
  cli_close(c2);
  report("forwarding: payload bytes unchanged, seqs remapped both ways");
}

static void t_gzip_serialize(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  char big[4000];
  grec_t r;
  gargs_t g;
  backend_t *b;
  memset(big, 'z', sizeof big);
  memcpy(big, "{\"A\":", 5);
  memset(&g, 0, sizeof g);
  memset(&r, 0, sizeof r);
  bk_reset(&A);
  bk_reset(&B);
  g.method = "Echo";
  g.payload = big;
  g.len = sizeof big;
  g.serialize = MRPC_SERIALIZE_MSGPACK;
  g.gzip = 1;
  CHECK_EQ_INT(gcall(c, &g, &r, NULL), 0);
  WAITT(r.n == 1, 5000);
  b = A.calls ? &A : &B;
  CHECK_EQ_INT(r.status, 0);
  CHECK(r.payload.len == sizeof big && memcmp(r.payload.data, big, sizeof big) == 0);
  CHECK(r.wire_len < 200);                       /* the answer came gzipped */
  CHECK_EQ_INT(r.serialize, MRPC_SERIALIZE_MSGPACK << 4);
  CHECK_EQ_INT((b->flags >> 2) & 7, MRPC_COMPRESS_GZIP); /* forwarded gzipped */
  CHECK_EQ_INT(b->serialize, MRPC_SERIALIZE_MSGPACK << 4);
  CHECK(b->payload.len == sizeof big && memcmp(b->payload.data, big, sizeof big) == 0);
  grec_free(&r);
  cli_close(c);
  report("gzip and the serialize type are kept on the way in and out");
}

static void t_round_robin(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  char seen[8];
  int i, na = 0, nb = 0;
  for (i = 0; i < 8; i++) {
    seen[i] = who(c);
    na += seen[i] == 'A';
    nb += seen[i] == 'B';
    if (i) CHECK(seen[i] != seen[i - 1]);
  }
  CHECK_EQ_INT(na, 4);
  CHECK_EQ_INT(nb, 4);
  cli_close(c);
  report("round robin across the two registered instances");
}

static void t_metadata(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  mrpc_meta_t m[2] = {{"trace", 5, "abc", 3}, {"k2", 2, "v 2", 3}};
  backend_t *b;
  grec_t r;
  gargs_t g;
  memset(&g, 0, sizeof g);
  memset(&r, 0, sizeof r);
  bk_reset(&A);
  bk_reset(&B);
  g.method = "Echo";
  g.payload = "x";
  g.len = 1;
  g.meta = m;
  g.nmeta = 2;
  CHECK_EQ_INT(gcall(c, &g, &r, NULL), 0);
  WAITT(r.n == 1, 5000);
  b = A.calls ? &A : &B;
  CHECK(strcmp(b->meta, "trace=abc&k2=v 2") == 0); /* as sent, nothing added */
  CHECK(strstr(r.meta, "trace=abc") && strstr(r.meta, "k2=v 2"));
  CHECK(strstr(r.meta, b == &A ? "who=A" : "who=B") != NULL);
  grec_free(&r);
  /* A caller's timeout is forwarded as it came: one __ServerTimeout. */
  memset(&r, 0, sizeof r);
  bk_reset(&A);
  bk_reset(&B);
  g.timeout_ms = 1500;
  CHECK_EQ_INT(gcall(c, &g, &r, NULL), 0);
  WAITT(r.n == 1, 5000);
  b = A.calls ? &A : &B;
  CHECK_EQ_INT(r.status, 0);
  CHECK_EQ_INT(b->n_timeout_meta, 1);
  CHECK(strstr(b->meta, "__ServerTimeout=1500") != NULL);
  grec_free(&r);
  cli_close(c);
  report("metadata both ways; __ServerTimeout forwarded once");
}

static void t_remote_error(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  grec_t r;
  call1(c, "Fail", "", &r);
  CHECK_EQ_INT(r.status, 0);
  CHECK_EQ_INT(r.flags & MRPC_FLAG_STATUS, MRPC_STATUS_ERROR);
  CHECK(strcmp(r.err, "boom") == 0);
  CHECK_EQ_INT(r.n_err_meta, 1);
  CHECK(strstr(r.meta, "k=v") != NULL);
  CHECK_BUF(r.payload, "partial");
  grec_free(&r);
  call1(c, "Nope", "", &r);
  CHECK(strcmp(r.err, "rpcx: can't find method Nope") == 0);
  grec_free(&r);
  cli_close(c);
  report("a remote error passes through: text, payload, metadata");
}

static void t_oneway_heartbeat(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  grec_t r, p;
  gargs_t g;
  memset(&g, 0, sizeof g);
  memset(&r, 0, sizeof r);
  memset(&p, 0, sizeof p);
  bk_reset(&A);
  bk_reset(&B);
  g.method = "Echo";
  g.payload = "fire";
  g.len = 4;
  g.oneway = 1;
  CHECK_EQ_INT(gcall(c, &g, &r, NULL), 0);
  WAIT(A.oneway + B.oneway == 1);
  sleep_ms(30);
  CHECK_EQ_INT(r.n, 0); /* no answer, no callback */
  CHECK_EQ_INT(A.oneway + B.oneway, 1);
  CHECK_EQ_INT(mrpc_client_ping(c, 2000, on_gcall, &p), 0);
  WAIT(p.n == 1);
  CHECK_EQ_INT(p.status, 0);
  CHECK_EQ_INT(A.calls + B.calls, 1); /* the heartbeat stayed at the gateway */
  grec_free(&r);
  grec_free(&p);
  cli_close(c);
  report("oneway forwarded oneway; a heartbeat is answered by the gateway");
}

static void t_no_instance(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  grec_t r;
  gargs_t g;
  memset(&g, 0, sizeof g);
  memset(&r, 0, sizeof r);
  g.service = "Nobody";
  g.method = "X";
  CHECK_EQ_INT(gcall(c, &g, &r, NULL), 0);
  WAITT(r.n == 1, 5000);
  CHECK(strcmp(r.err, "rpcx: gateway: no instance of service Nobody") == 0);
  grec_free(&r);
  memset(&r, 0, sizeof r);
  g.service = "bad/name";
  CHECK_EQ_INT(gcall(c, &g, &r, NULL), 0);
  WAIT(r.n == 1);
  CHECK(strcmp(r.err, "rpcx: gateway: bad service name 'bad/name'") == 0);
  grec_free(&r);
  cli_close(c);
  report("no instance and a bad service name: clear rpcx errors");
}

static void t_timeout(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  mrpc_meta_t m = {"__ServerTimeout", 15, "60", 2};
  uint64_t t0;
  grec_t r;
  gargs_t g;
  memset(&g, 0, sizeof g);
  memset(&r, 0, sizeof r);
  g.method = "Slow";
  g.meta = &m;
  g.nmeta = 1;
  t0 = uv_now(&loop);
  CHECK_EQ_INT(gcall(c, &g, &r, NULL), 0);
  WAIT(r.n == 1);
  CHECK(strcmp(r.err, "rpcx: gateway: timeout") == 0);
  CHECK(uv_now(&loop) - t0 < 140); /* before Slow's 150 ms */
  sleep_ms(200);                    /* Slow answers: that late reply is ignored */
  CHECK_EQ_INT(r.n, 1);
  grec_free(&r);
  cli_close(c);
  report("the caller's __ServerTimeout bounds the call: rpcx: gateway: timeout");
}

static void t_leave(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  int i, onlya = 1, sawb = 0;
  CHECK_EQ_INT(reg_del("Arith", &B), 0);
  /* B leaves every list: its connection is closed once idle. */
  WAITT(gwt_stats(&G).instances == 1 && gwt_stats(&G).connections == 1, 5000);
  for (i = 0; i < 6; i++) onlya &= who(c) == 'A';
  CHECK(onlya);
  CHECK_EQ_INT(reg_add("Arith", &B, "weight=1"), 0);
  WAITT(gwt_stats(&G).instances == 2, 5000);
  for (i = 0; i < 4 && !sawb; i++) sawb = who(c) == 'B';
  CHECK(sawb);
  cli_close(c);
  report("an instance leaving the registry gets no calls; back, it does");
}

static void t_killed(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  mrpc_gateway_stats_t before = gwt_stats(&G);
  grec_t r[2];
  gargs_t g;
  int i, ok = 1;
  /* Killed while registered: every call still succeeds, on A. */
  bk_stop(&B);
  for (i = 0; i < 6; i++) ok &= who(c) == 'A';
  CHECK(ok);
  CHECK(gwt_stats(&G).failovers > before.failovers);
  /* Back on the same port; then killed with a call in flight on it. */
  CHECK_EQ_INT(bk_start(&B, NULL), 0);
  for (i = 0; i < 40 && who(c) != 'B'; i++) sleep_ms(50); /* passed over ~1 s */
  bk_reset(&A);
  bk_reset(&B);
  A.nheld = B.nheld = 0;
  memset(r, 0, sizeof r);
  memset(&g, 0, sizeof g);
  g.method = "Hold";
  CHECK_EQ_INT(gcall(c, &g, &r[0], NULL), 0);
  CHECK_EQ_INT(gcall(c, &g, &r[1], NULL), 0);
  WAIT(A.nheld + B.nheld == 2);
  CHECK_EQ_INT(B.nheld, 1);
  before = gwt_stats(&G);
  bk_stop(&B); /* drops B's held request and closes: ECONNLOST at the gateway */
  WAIT(A.nheld == 2);
  CHECK_EQ_INT(gwt_stats(&G).failovers, before.failovers + 1);
  for (i = 0; i < 2; i++) mrpc_req_reply(A.held[i], "held", 4, NULL, 0);
  A.nheld = 0;
  WAIT(r[0].n == 1 && r[1].n == 1);
  for (i = 0; i < 2; i++) {
    CHECK_EQ_INT(r[i].status, 0);
    CHECK_BUF(r[i].payload, "held");
    grec_free(&r[i]);
  }
  CHECK_EQ_INT(bk_start(&B, NULL), 0);
  cli_close(c);
  report("an instance killed: Failover to the other, calls in flight too");
}

/* Another selector: weights from the registry's metadata. */
static void t_weighted(void) {
  mrpc_gateway_opts_t o;
  mrpc_client_t *c;
  done_t d = {0, -1};
  gwt_t g3;
  int i, na = 0, nb = 0;
  CHECK_EQ_INT(mrpc_registry_update(reg_w, "Arith", A.addr, "weight=3", on_reg_done, &d), 0);
  WAITT(d.n == 1, 5000);
  memset(&o, 0, sizeof o);
  o.selector = "WeightedRoundRobin";
  o.log = quiet_log;
  o.log_udata = &H;
  gwt_start(&g3, reg_g, &o);
  c = cli_new(g3.addr, NULL);
  for (i = 0; i < 8; i++) {
    char w = who(c);
    na += w == 'A';
    nb += w == 'B';
  }
  CHECK_EQ_INT(na, 6); /* smooth weighted round robin: 3 to 1 */
  CHECK_EQ_INT(nb, 2);
  cli_close(c);
  gwt_stop(&g3);
  d.n = 0;
  CHECK_EQ_INT(mrpc_registry_update(reg_w, "Arith", A.addr, "weight=1", on_reg_done, &d), 0);
  WAITT(d.n == 1, 5000);
  report("WeightedRoundRobin by the weight= the registry lists");
}

/* A registry that never answers: requests wait for the first list, at
 * most their timeout, at most max_waiting of them; close ends the rest. */
static void t_registry_down(void) {
  mrpc_gateway_opts_t o;
  mrpc_registry_t *dead = NULL;
  mrpc_client_t *c;
  gwt_t g2;
  grec_t r[4];
  gargs_t g;
  char url[128];
  int i;
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/nowhere", dead_port());
  CHECK_EQ_INT(mrpc_registry_open(&loop, url, &dead), 0);
  memset(&o, 0, sizeof o);
  o.timeout_ms = 150;
  o.max_waiting = 2;
  gwt_start(&g2, dead, &o);
  c = cli_new(g2.addr, NULL);
  memset(r, 0, sizeof r);
  memset(&g, 0, sizeof g);
  g.method = "Who";
  for (i = 0; i < 3; i++) CHECK_EQ_INT(gcall(c, &g, &r[i], NULL), 0);
  WAIT(r[2].n == 1);
  CHECK_EQ_INT(r[0].n + r[1].n, 0);
  CHECK(strcmp(r[2].err, "rpcx: gateway: too many requests waiting for service Arith (max_waiting 2)") == 0);
  WAIT(r[0].n == 1 && r[1].n == 1);
  CHECK(strcmp(r[0].err, "rpcx: gateway: no instance of service Arith (the registry has not answered)") == 0);
  /* Close while one waits: it ends once, with "closed". */
  CHECK_EQ_INT(gcall(c, &g, &r[3], NULL), 0);
  WAIT(gwt_stats(&g2).waiting == 1);
  gwt_stop(&g2);
  WAIT(r[3].n == 1);
  CHECK(strcmp(r[3].err, "rpcx: gateway: closed") == 0);
  sleep_ms(20);
  for (i = 0; i < 4; i++) {
    CHECK_EQ_INT(r[i].n, 1);
    grec_free(&r[i]);
  }
  cli_close(c);
  reg_close(&dead);
  report("a registry that never answers: bounded waits, clear errors");
}

/* opts.conns: each instance gets that many connections, opened as calls
 * need them and used round robin, so an address served by several
 * workers (SO_REUSEPORT) sees calls on all of them. */
static void t_conns(void) {
  mrpc_gateway_opts_t o;
  mrpc_client_t *c;
  gwt_t g2;
  int i, ok = 0;
  memset(&o, 0, sizeof o);
  o.timeout_ms = 3000;
  o.conns = 3;
  if (gwt_start(&g2, reg_g, &o) < 0) return;
  c = cli_new(g2.addr, NULL);
  for (i = 0; i < 6; i++) ok += who(c) != 0;
  CHECK_EQ_INT(ok, 6);
  CHECK_EQ_INT(gwt_stats(&g2).connections, 6); /* 2 instances x 3 */
  for (i = 0; i < 12; i++) ok += who(c) != 0;
  CHECK_EQ_INT(ok, 18);
  CHECK_EQ_INT(gwt_stats(&g2).connections, 6); /* reused, not more */
  cli_close(c);
  gwt_stop(&g2);
  report("conns: calls spread over that many connections to each instance");
}

/* max_services: at the limit, the least recently used service that no
 * call names makes room (its watch and its instance connections go);
 * while every one is in use a new one is refused. max_inflight: past it,
 * a call is refused at once. */
static void t_limits(void) {
  mrpc_gateway_opts_t o;
  mrpc_client_t *c;
  gwt_t g2;
  grec_t r[5];
  gargs_t g;
  int i;
  memset(&o, 0, sizeof o);
  o.timeout_ms = 3000;
  o.max_services = 1;
  o.max_inflight = 3;
  if (gwt_start(&g2, reg_g, &o) < 0) return;
  c = cli_new(g2.addr, NULL);
  CHECK(who(c) != 0);
  CHECK_EQ_INT(gwt_stats(&g2).connections, 1);
  call_svc(c, "Nope", "X", "", &r[0]); /* Arith makes room */
  CHECK(strcmp(r[0].err, "rpcx: gateway: no instance of service Nope") == 0);
  CHECK_EQ_INT(gwt_stats(&g2).services, 1);
  WAIT(gwt_stats(&g2).connections == 0 && gwt_stats(&g2).instances == 0);
  CHECK(who(c) != 0); /* and back: Nope makes room */
  CHECK_EQ_INT(gwt_stats(&g2).services, 1);
  /* Arith in use: no room for Nope. */
  A.nheld = B.nheld = 0;
  memset(r, 0, sizeof r);
  memset(&g, 0, sizeof g);
  g.method = "Hold";
  for (i = 0; i < 2; i++) CHECK_EQ_INT(gcall(c, &g, &r[i], NULL), 0);
  WAIT(A.nheld + B.nheld == 2);
  call_svc(c, "Nope", "X", "", &r[4]);
  CHECK(strcmp(r[4].err, "rpcx: gateway: too many services in use (max_services 1)") == 0);
  CHECK_EQ_INT(gcall(c, &g, &r[2], NULL), 0);
  WAIT(A.nheld + B.nheld == 3);
  CHECK_EQ_INT(gcall(c, &g, &r[3], NULL), 0); /* the 4th in flight */
  WAIT(r[3].n == 1);
  CHECK(strcmp(r[3].err, "rpcx: gateway: too many calls in flight (max_inflight 3)") == 0);
  for (i = 0; i < A.nheld; i++) mrpc_req_reply(A.held[i], "", 0, NULL, 0);
  for (i = 0; i < B.nheld; i++) mrpc_req_reply(B.held[i], "", 0, NULL, 0);
  A.nheld = B.nheld = 0;
  WAIT(r[0].n + r[1].n + r[2].n == 3);
  for (i = 0; i < 5; i++) grec_free(&r[i]);
  call_svc(c, "Nope", "X", "", &r[0]); /* room again */
  CHECK(strcmp(r[0].err, "rpcx: gateway: no instance of service Nope") == 0);
  grec_free(&r[0]);
  cli_close(c);
  gwt_stop(&g2);
  report("max_services makes room by the least recently used idle service; max_inflight");
}

static void t_close_inflight(void) {
  mrpc_client_t *c = cli_new(G.addr, NULL);
  grec_t r[3];
  gargs_t g;
  int i;
  memset(r, 0, sizeof r);
  memset(&g, 0, sizeof g);
  A.nheld = B.nheld = 0;
  g.method = "Hold";
  for (i = 0; i < 3; i++) CHECK_EQ_INT(gcall(c, &g, &r[i], NULL), 0);
  WAIT(A.nheld + B.nheld == 3);
  CHECK_EQ_INT(gwt_stats(&G).inflight, 3);
  gwt_stop(&G); /* the gateway first, then its server */
  for (i = 0; i < 3; i++) {
    CHECK_EQ_INT(r[i].n, 1);
    CHECK(strcmp(r[i].err, "rpcx: gateway: closed") == 0);
  }
  bk_drop_held(&A);
  bk_drop_held(&B);
  sleep_ms(20);
  for (i = 0; i < 3; i++) {
    CHECK_EQ_INT(r[i].n, 1);
    grec_free(&r[i]);
  }
  cli_close(c);
  report("gateway close with calls in flight: each ends exactly once");
}

/* Detached from its server, the gateway leaves rpcx's own answer. */
static void t_detached(void) {
  mrpc_client_t *c;
  mrpc_gateway_t *gw;
  grec_t r;
  int closed = 0;
  gwt_t g;
  memset(&g, 0, sizeof g);
  CHECK_EQ_INT(mrpc_server_new(&loop, NULL, &g.s), 0);
  CHECK_EQ_INT(mrpc_gateway_new(&loop, g.s, reg_g, NULL, &gw), 0);
  CHECK_EQ_INT(mrpc_server_listen(g.s, "tcp", "127.0.0.1:0"), 0);
  mrpc_server_address(g.s, 0, g.addr, sizeof g.addr);
  mrpc_gateway_close(gw, on_gw_closed, &closed);
  WAIT(closed == 1);
  c = cli_new(g.addr, NULL);
  call1(c, "Who", "", &r);
  CHECK(strcmp(r.err, "rpcx: can't find service Arith") == 0);
  grec_free(&r);
  cli_close(c);
  gwt_stop(&g);
  report("a closed gateway is detached from its server");
}

static void t_bad_opts(void) {
  mrpc_gateway_opts_t o;
  mrpc_gateway_t *gw = NULL;
  mrpc_server_t *s;
  int closed = 0;
  memset(&o, 0, sizeof o);
  CHECK_EQ_INT(mrpc_server_new(&loop, NULL, &s), 0);
  o.selector = "Closest";
  CHECK_EQ_INT(mrpc_gateway_new(&loop, s, reg_g, &o, &gw), MRPC_EINVAL);
  o.selector = "Nope";
  CHECK_EQ_INT(mrpc_gateway_new(&loop, s, reg_g, &o, &gw), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_gateway_new(&loop, s, NULL, NULL, &gw), MRPC_EINVAL);
  CHECK(gw == NULL);
  mrpc_server_close(s, on_server_closed, &closed);
  WAIT(closed == 1);
  report("bad options: MRPC_EINVAL, nothing attached");
}

/* ---- suites -------------------------------------------------------------------------- */

/* Starts a suite's backends and gateway; -1 (reported, torn down) when
 * they cannot be. */
static int suite_start(const char *url, mrpc_gateway_opts_t *o) {
  o->log = quiet_log; /* the failures the scenarios cause are logged */
  o->log_udata = &H;
  printf("# registry %s\n", url);
  if (setup(url, o) == 0) return 0;
  report("setup");
  teardown();
  return -1;
}

static void full_suite(const char *url) {
  mrpc_gateway_opts_t o;
  memset(&o, 0, sizeof o);
  o.timeout_ms = 3000;
  if (suite_start(url, &o) < 0) return;
  t_forward();
  t_gzip_serialize();
  t_round_robin();
  t_metadata();
  t_remote_error();
  t_oneway_heartbeat();
  t_no_instance();
  t_limits();
  t_conns();
  t_timeout();
  t_leave();
  t_killed();
  t_weighted();
  t_registry_down();
  t_bad_opts();
  t_detached();
  t_close_inflight();
  teardown();
}

/* The same gateway through another backend of the registry interface. */
static void short_suite(const char *kind, const char *url) {
  mrpc_gateway_opts_t o;
  char name[160];
  memset(&o, 0, sizeof o);
  if (suite_start(url, &o) < 0) return;
  t_round_robin();
  t_leave();
  teardown();
  snprintf(name, sizeof name, "%s registry: round robin, an instance leaving", kind);
  report(name);
}

int main(void) {
  const char *url = registry_url("redis");
  if (!url) {
    printf("SKIP: no Redis fixture ($MOONRPC_REDIS_DIR/addr; run through ctest)\n");
    return 77;
  }
  harness_start();
  full_suite(url);
  if ((url = registry_url("etcd"))) short_suite("etcd", url);
  if ((url = registry_url("moonrpc"))) short_suite("moonrpc", url);
  else report("the embedded registry starts");
  return harness_finish();
}
