/* gateway_harness.h: what the gateway tests (test_gateway.c for rpcx
 * frames, test_gateway_http.c for HTTP) share, on top of
 * transport_harness.h (the loop, WAIT, call records):
 *
 *   - backends: real mrpc servers on loopback with an Arith service whose
 *     handlers record what reached them (Who, Echo, Fail, Hold, Slow);
 *   - the registry: a real Redis (or etcd) started by the ctest fixture
 *     (spec/redis.cmake, spec/etcd.cmake), or the embedded moonrpc://
 *     registry run in-process; backends are registered through one
 *     registry object, the gateway watches through another;
 *   - the gateway under test: its own server on 127.0.0.1:0 with
 *     mrpc_gateway_new attached, and its close counted;
 *   - a raw TCP peer (for HTTP and for bytes no client would send).
 *
 * Without the fixture's address ($MOONRPC_REDIS_DIR/addr) the programs
 * report themselves skipped (exit 77). */
#ifndef MRPC_SPEC_GATEWAY_HARNESS_H
#define MRPC_SPEC_GATEWAY_HARNESS_H

#include <strings.h>
#include <time.h>
#include "transport_harness.h"

/* ---- backends ------------------------------------------------------------ */

#define BK_MAX_SEQS 256
#define BK_MAX_HELD 16

typedef struct backend_s {
  mrpc_server_t *s;
  char addr[320];
  char name[8];
  int port;
  int calls, oneway, closed;
  mrpc_buf_t payload;        /* the last Echo's payload */
  uint8_t serialize, flags;  /* and its header bytes */
  char meta[1024];           /* and its metadata, "k=v&k=v" in wire order */
  int n_timeout_meta;        /* __ServerTimeout pairs in the last Echo */
  uint64_t seqs[BK_MAX_SEQS];
  int nseqs;
  mrpc_req_t *held[BK_MAX_HELD];
  int nheld;
  mrpc_req_t *slow;
  uv_timer_t timer;
  int timer_open;
} backend_t;

static inline void bk_seen(backend_t *b, mrpc_req_t *req) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  b->calls++;
  if (b->nseqs < BK_MAX_SEQS) b->seqs[b->nseqs++] = f->seq;
  if (mrpc_frame_is_oneway(f)) b->oneway++;
}

/* Arith.Who: answers with the backend's name, in the payload and in the
 * reply metadata. */
static inline void bk_who(mrpc_req_t *req, void *ud) {
  backend_t *b = ud;
  mrpc_meta_t m = {"who", 3, b->name, strlen(b->name)};
  bk_seen(b, req);
  mrpc_req_reply(req, b->name, strlen(b->name), &m, 1);
}

/* Arith.Echo: records the request, answers with its payload and its
 * metadata (less __ServerTimeout) plus who=NAME. */
static inline void bk_echo(mrpc_req_t *req, void *ud) {
  backend_t *b = ud;
  const mrpc_frame_t *f = mrpc_req_frame(req);
  mrpc_meta_t out[32];
  size_t i, n = 0, k = 0;
  bk_seen(b, req);
  b->payload.len = 0;
  mrpc_buf_append(&b->payload, f->payload, f->payload_len);
  b->serialize = f->serialize;
  b->flags = f->flags;
  b->meta[0] = 0;
  b->n_timeout_meta = 0;
  for (i = 0; i < f->meta_count; i++) {
    const mrpc_meta_t *m = &f->meta[i];
    k += (size_t)snprintf(b->meta + k, k < sizeof b->meta ? sizeof b->meta - k : 0,
                          "%s%.*s=%.*s", i ? "&" : "", (int)m->key_len, m->key,
                          (int)m->val_len, m->val);
    if (k >= sizeof b->meta) k = sizeof b->meta - 1;
    if (m->key_len == 15 && memcmp(m->key, "__ServerTimeout", 15) == 0) {
      b->n_timeout_meta++;
      continue;
    }
    if (n < 31) out[n++] = *m;
  }
  out[n].key = "who";
  out[n].key_len = 3;
  out[n].val = b->name;
  out[n].val_len = strlen(b->name);
  mrpc_req_reply(req, f->payload, f->payload_len, out, n + 1);
}

/* Arith.Fail: an error with a payload and metadata beside it. */
static inline void bk_fail(mrpc_req_t *req, void *ud) {
  mrpc_meta_t m = {"k", 1, "v", 1};
  bk_seen(ud, req);
  mrpc_req_error(req, "boom", "partial", 7, &m, 1);
}

/* Arith.Hold: keeps the request; the scenario answers or drops it. */
static inline void bk_hold(mrpc_req_t *req, void *ud) {
  backend_t *b = ud;
  bk_seen(b, req);
  if (b->nheld < BK_MAX_HELD) b->held[b->nheld++] = req;
  else mrpc_req_drop(req);
}

static inline void bk_on_slow(uv_timer_t *t) {
  backend_t *b = t->data;
  mrpc_req_t *req = b->slow;
  b->slow = NULL;
  if (req) mrpc_req_reply(req, "slow", 4, NULL, 0);
}

/* Arith.Slow: answers "slow" 150 ms later (one at a time). */
static inline void bk_slow(mrpc_req_t *req, void *ud) {
  backend_t *b = ud;
  bk_seen(b, req);
  if (b->slow) {
    mrpc_req_error(req, "busy", NULL, 0, NULL, 0);
    return;
  }
  b->slow = req;
  uv_timer_start(&b->timer, bk_on_slow, 150, 0);
}

static inline void bk_drop_held(backend_t *b) {
  int i;
  for (i = 0; i < b->nheld; i++)
    if (b->held[i]) mrpc_req_drop(b->held[i]);
  b->nheld = 0;
  if (b->slow) {
    uv_timer_stop(&b->timer);
    mrpc_req_drop(b->slow);
    b->slow = NULL;
  }
}

static inline void bk_reset(backend_t *b) {
  b->calls = b->oneway = 0;
  b->nseqs = 0;
  b->meta[0] = 0;
  b->payload.len = 0;
}

/* Starts (or restarts, on the same port) a backend. */
static inline int bk_start(backend_t *b, const char *name) {
  char where[64];
  int rc;
  if (name) snprintf(b->name, sizeof b->name, "%s", name);
  if (!b->timer_open) {
    uv_timer_init(&loop, &b->timer);
    b->timer.data = b;
    b->timer_open = 1;
  }
  b->closed = 0;
  if (mrpc_server_new(&loop, NULL, &b->s) != 0) return -1;
  mrpc_server_register(b->s, "Arith", "Who", bk_who, b);
  mrpc_server_register(b->s, "Arith", "Echo", bk_echo, b);
  mrpc_server_register(b->s, "Arith", "Fail", bk_fail, b);
  mrpc_server_register(b->s, "Arith", "Hold", bk_hold, b);
  mrpc_server_register(b->s, "Arith", "Slow", bk_slow, b);
  snprintf(where, sizeof where, "127.0.0.1:%d", b->port);
  rc = mrpc_server_listen(b->s, "tcp", where);
  CHECK_EQ_INT(rc, 0);
  if (rc == 0) {
    mrpc_server_address(b->s, 0, b->addr, sizeof b->addr);
    b->port = port_of(b->addr);
  }
  return rc;
}

/* Closes the backend's server (its handlers' held requests dropped). */
static inline void bk_stop(backend_t *b) {
  if (!b->s) return;
  bk_drop_held(b);
  mrpc_server_close(b->s, on_server_closed, &b->closed);
  b->s = NULL;
  WAIT(b->closed == 1);
}

static inline void bk_free(backend_t *b) {
  bk_stop(b);
  if (b->timer_open) uv_close((uv_handle_t *)&b->timer, NULL);
  b->timer_open = 0;
  mrpc_buf_free(&b->payload);
}

/* ---- the registry ----------------------------------------------------------- */

static char reg_url[256];
static mrpc_registry_t *reg_w; /* registers the backends */
static mrpc_registry_t *reg_g; /* the gateway's */
static mrpc_regsrv_t *regsrv;  /* the embedded registry, when in use */
static mrpc_server_t *regsrv_srv;

typedef struct done_s {
  int n, status;
} done_t;

static inline void on_reg_done(int status, void *ud) {
  done_t *d = ud;
  d->n++;
  d->status = status;
}

static inline int reg_add(const char *service, backend_t *b, const char *meta) {
  done_t d = {0, -1};
  CHECK_EQ_INT(mrpc_registry_register(reg_w, service, b->addr, meta, 10, on_reg_done, &d), 0);
  WAITT(d.n == 1, 5000);
  return d.status;
}

static inline int reg_del(const char *service, backend_t *b) {
  done_t d = {0, -1};
  CHECK_EQ_INT(mrpc_registry_unregister(reg_w, service, b->addr, on_reg_done, &d), 0);
  WAITT(d.n == 1, 5000);
  return d.status;
}

static inline void reg_close(mrpc_registry_t **r) {
  done_t d = {0, -1};
  if (!*r) return;
  mrpc_registry_close(*r, on_reg_done, &d);
  *r = NULL;
  WAITT(d.n == 1, 5000);
}

static inline int read_addr_file(const char *dir, char *out, size_t len) {
  char path[600];
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "%s/addr", dir);
  if (!(f = fopen(path, "r"))) return -1;
  n = fread(out, 1, len - 1, f);
  fclose(f);
  out[n] = 0;
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = 0;
  return n > 0 ? 0 : -1;
}

/* The URL of a registry: "redis" or "etcd" from the ctest fixture (NULL
 * when it is not running), or "moonrpc": an embedded registry started
 * here, on this loop. */
static inline const char *registry_url(const char *kind) {
  char addr[128];
  const char *dir = NULL;
  if (strcmp(kind, "moonrpc") == 0) {
    char where[64];
    if (mrpc_server_new(&loop, NULL, &regsrv_srv) != 0 ||
        mrpc_regsrv_new(&loop, regsrv_srv, NULL, &regsrv) != 0 ||
        mrpc_server_listen(regsrv_srv, "tcp", "127.0.0.1:0") != 0 ||
        mrpc_server_address(regsrv_srv, 0, where, sizeof where) != 0)
      return NULL;
    snprintf(reg_url, sizeof reg_url, "moonrpc://%s/gw_test_%d", where + 4, (int)getpid());
    return reg_url;
  }
  dir = getenv(strcmp(kind, "etcd") == 0 ? "MOONRPC_ETCD_DIR" : "MOONRPC_REDIS_DIR");
  if (!dir || read_addr_file(dir, addr, sizeof addr) != 0) return NULL;
  snprintf(reg_url, sizeof reg_url, "%s://%s/gw_test_%d_%ld", kind, addr, (int)getpid(),
           (long)time(NULL));
  return reg_url;
}

static inline void on_regsrv_closed(int status, void *ud) { on_reg_done(status, ud); }

/* Stops the embedded registry, if one was started. */
static inline void registry_stop(void) {
  done_t d = {0, -1};
  int closed = 0;
  if (!regsrv) return;
  mrpc_regsrv_close(regsrv, on_regsrv_closed, &d);
  regsrv = NULL;
  WAIT(d.n == 1);
  mrpc_server_close(regsrv_srv, on_server_closed, &closed);
  regsrv_srv = NULL;
  WAIT(closed == 1);
}

/* ---- the gateway under test ---------------------------------------------------- */

typedef struct gwt_s {
  mrpc_server_t *s;
  mrpc_gateway_t *gw;
  char addr[320];
  int port;
  int gw_closed, srv_closed;
} gwt_t;

static inline void on_gw_closed(mrpc_gateway_t *gw, void *ud) {
  CHECK(gw == NULL);
  (*(int *)ud)++;
}

static inline int gwt_start(gwt_t *g, mrpc_registry_t *reg, const mrpc_gateway_opts_t *o) {
  mrpc_server_opts_t so;
  memset(g, 0, sizeof *g);
  memset(&so, 0, sizeof so);
  so.log = quiet_log; /* a failing oneway is logged: keep the output clean */
  so.log_udata = &H;
  CHECK_EQ_INT(mrpc_server_new(&loop, &so, &g->s), 0);
  CHECK_EQ_INT(mrpc_gateway_new(&loop, g->s, reg, o, &g->gw), 0);
  CHECK_EQ_INT(mrpc_server_listen(g->s, "tcp", "127.0.0.1:0"), 0);
  CHECK_EQ_INT(mrpc_server_address(g->s, 0, g->addr, sizeof g->addr), 0);
  g->port = port_of(g->addr);
  return g->gw ? 0 : -1;
}

/* Closes the gateway (its callback must come exactly once, and not from
 * inside the call), then its server. */
static inline void gwt_stop(gwt_t *g) {
  if (g->gw) {
    mrpc_gateway_close(g->gw, on_gw_closed, &g->gw_closed);
    g->gw = NULL;
    CHECK_EQ_INT(g->gw_closed, 0);
    WAIT(g->gw_closed == 1);
    CHECK_EQ_INT(g->gw_closed, 1);
  }
  if (g->s) {
    mrpc_server_close(g->s, on_server_closed, &g->srv_closed);
    g->s = NULL;
    WAIT(g->srv_closed == 1);
  }
}

static inline mrpc_gateway_stats_t gwt_stats(const gwt_t *g) {
  mrpc_gateway_stats_t st;
  mrpc_gateway_stats(g->gw, &st);
  return st;
}

/* A loopback port where nothing listens (a server was there a moment ago). */
static inline int dead_port(void) {
  mrpc_server_t *s;
  char where[64];
  int closed = 0;
  mrpc_server_new(&loop, NULL, &s);
  mrpc_server_listen(s, "tcp", "127.0.0.1:0");
  mrpc_server_address(s, 0, where, sizeof where);
  mrpc_server_close(s, on_server_closed, &closed);
  WAIT(closed == 1);
  return port_of(where);
}

/* ---- a raw TCP peer --------------------------------------------------------------- */

typedef struct peer_s {
  uv_tcp_t tcp;
  uv_connect_t creq;
  mrpc_buf_t got;
  int connected, eof, closed, status;
} peer_t;

typedef struct peer_write_s {
  uv_write_t req;
  char data[];
} peer_write_t;

static inline void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char space[65536];
  (void)h;
  (void)n;
  *b = uv_buf_init(space, sizeof space);
}

static inline void peer_closed(uv_handle_t *h) { ((peer_t *)h->data)->closed = 1; }

static inline void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  peer_t *p = s->data;
  if (n > 0) mrpc_buf_append(&p->got, b->base, (size_t)n);
  if (n < 0) {
    p->eof = 1;
    uv_read_stop(s);
  }
}

static inline void peer_on_connect(uv_connect_t *req, int status) {
  peer_t *p = req->data;
  p->status = status;
  p->connected = 1;
  if (status == 0) uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

static inline int peer_open(peer_t *p, int port) {
  struct sockaddr_in sa;
  memset(p, 0, sizeof *p);
  uv_ip4_addr("127.0.0.1", port, &sa);
  uv_tcp_init(&loop, &p->tcp);
  p->tcp.data = p;
  p->creq.data = p;
  uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&sa, peer_on_connect);
  WAIT(p->connected);
  CHECK_EQ_INT(p->status, 0);
  return p->status;
}

static inline void peer_written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static inline void peer_send(peer_t *p, const char *data, size_t len) {
  peer_write_t *w = malloc(sizeof *w + len);
  uv_buf_t b;
  memcpy(w->data, data, len);
  b = uv_buf_init(w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, peer_written) < 0) free(w);
}

static inline void peer_close(peer_t *p) {
  if (!uv_is_closing((uv_handle_t *)&p->tcp)) uv_close((uv_handle_t *)&p->tcp, peer_closed);
  WAIT(p->closed);
  mrpc_buf_free(&p->got);
}

#endif /* MRPC_SPEC_GATEWAY_HARNESS_H */
