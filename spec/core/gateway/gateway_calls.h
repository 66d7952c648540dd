/* gateway_calls.h: rpcx calls through the gateway for test_gateway.c: a
 * record of what one call's callback saw (reply metadata too), calls with
 * any service, payload, metadata, serialize type, gzip or oneway, and
 * Arith.Who, which says which backend answered. Included once, after
 * gateway_harness.h (loop, WAITT, CHECK). */
#ifndef MRPC_SPEC_GATEWAY_CALLS_H
#define MRPC_SPEC_GATEWAY_CALLS_H

/* ---- calls through the gateway ---------------------------------------------- */

/* What one call's callback saw, the reply metadata too. */
typedef struct grec_s {
  int n, status;
  uint64_t seq;
  uint8_t flags, serialize;
  size_t wire_len;
  mrpc_buf_t payload;
  char err[256], meta[512];
  int n_err_meta;
} grec_t;

static void on_gcall(int status, const mrpc_frame_t *f, void *ud) {
  grec_t *r = ud;
  const char *e;
  size_t i, k = 0, el = 0;
  r->n++;
  r->status = status;
  if (!f) return;
  r->seq = f->seq;
  r->flags = f->flags;
  r->serialize = f->serialize;
  r->wire_len = f->wire_payload_len;
  r->payload.len = 0;
  mrpc_buf_append(&r->payload, f->payload, f->payload_len);
  if ((e = mrpc_frame_error(f, &el)))
    snprintf(r->err, sizeof r->err, "%.*s", (int)el, e);
  r->meta[0] = 0;
  for (i = 0; i < f->meta_count; i++) {
    const mrpc_meta_t *m = &f->meta[i];
    if (m->key_len == 14 && memcmp(m->key, "__rpcx_error__", 14) == 0) r->n_err_meta++;
    k += (size_t)snprintf(r->meta + k, k < sizeof r->meta ? sizeof r->meta - k : 0,
                          "%s%.*s=%.*s", i ? "&" : "", (int)m->key_len, m->key,
                          (int)m->val_len, m->val);
    if (k >= sizeof r->meta) k = sizeof r->meta - 1;
  }
}

static void grec_free(grec_t *r) { mrpc_buf_free(&r->payload); }

typedef struct gargs_s {
  const char *service, *method;
  const char *payload;
  size_t len;
  const mrpc_meta_t *meta;
  size_t nmeta;
  uint8_t serialize;
  int gzip, oneway;
  uint64_t timeout_ms;
} gargs_t;

static int gcall(mrpc_client_t *c, const gargs_t *g, grec_t *r, uint64_t *id) {
  mrpc_call_args_t a;
  memset(&a, 0, sizeof a);
  a.service = g->service ? g->service : "Arith";
  a.method = g->method;
  a.payload = g->payload ? g->payload : "";
  a.payload_len = g->payload ? g->len : 0;
  a.meta = g->meta;
  a.meta_count = g->nmeta;
  a.serialize = g->serialize;
  a.gzip = g->gzip;
  a.oneway = g->oneway;
  a.timeout_ms = g->timeout_ms;
  return mrpc_client_call(c, &a, on_gcall, r, id);
}

/* One call to SVC.METHOD (svc NULL: Arith) with a string payload; waits
 * for its answer (an error's text in r->err). */
static void call_svc(mrpc_client_t *c, const char *svc, const char *method,
                     const char *pay, grec_t *r) {
  gargs_t g;
  memset(&g, 0, sizeof g);
  memset(r, 0, sizeof *r);
  g.service = svc;
  g.method = method;
  g.payload = pay;
  g.len = strlen(pay);
  CHECK_EQ_INT(gcall(c, &g, r, NULL), 0);
  WAITT(r->n == 1, 5000);
}

static void call1(mrpc_client_t *c, const char *method, const char *pay, grec_t *r) {
  call_svc(c, NULL, method, pay, r);
}

/* Arith.Who through `c`: 'A', 'B', or 0 on a failure. */
static char who(mrpc_client_t *c) {
  grec_t r;
  char w;
  call1(c, "Who", "", &r);
  w = r.n == 1 && r.status == 0 && !r.err[0] && r.payload.len == 1 ? r.payload.data[0] : 0;
  grec_free(&r);
  return w;
}

static int distinct(const uint64_t *v, int n) {
  int i, j;
  for (i = 0; i < n; i++)
    for (j = i + 1; j < n; j++)
      if (v[i] == v[j]) return 0;
  return 1;
}

#endif
