/* transport_harness.h: the shared harness of the transport tests.
 *
 * The server and client tests (spec/core/server/, spec/core/client/) and the gateway harness each include this once. It holds what
 * every scenario needs to run a server (mrpc_server_*) and clients
 * (mrpc_client_*) on one uv_loop_t that the test owns, as a host would:
 *
 *   - CHECK, CHECK_EQ_INT, CHECK_BUF and report(): the assertions and the
 *     "ok N - name" lines; n_pass/n_fail for the final summary;
 *   - from loop_harness.h: the loop, WAIT(cond) with a 3 s watchdog (a
 *     wait fails instead of hanging), sleep_ms(), drain() (run the loop
 *     until idle, then uv_walk it to check that no handle is left behind),
 *     and harness_start()/harness_finish();
 *   - call records (rec_t, on_call): every callback invocation is counted,
 *     so "exactly once" is checked, not assumed; a record can also close,
 *     cancel or call again from inside its callback;
 *   - the Echo service's handlers (Echo, Hold, Later, Fail, Kill) and what
 *     they saw (H); srv_start/srv_close and cli_new/cli_close.
 *
 * Each program owns main(): harness_start() (SIGPIPE ignored, `loop` and
 * the two harness timers), its scenarios, then harness_finish() (the timers
 * closed, uv_loop_close() checked, "N passed, N failed" printed).
 *
 * Everything here is static (one copy per program); functions are static
 * inline so that one a program does not use draws no warning. */
#ifndef MRPC_SPEC_TRANSPORT_HARNESS_H
#define MRPC_SPEC_TRANSPORT_HARNESS_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "moonrpc.h"

/* ---- a tiny test harness ------------------------------------------------ */

#include "check.h"
#include "loop_harness.h"

/* A byte buffer equals a C string. */
#define CHECK_BUF(buf, str)                                                 \
  do {                                                                      \
    const char *s_ = (str);                                                 \
    size_t n_ = strlen(s_);                                                 \
    if ((buf).len != n_ || (n_ && memcmp((buf).data, s_, n_) != 0)) {       \
      fprintf(stderr, "    %s:%d: %s == \"%.*s\", expected \"%s\"\n",       \
              __FILE__, __LINE__, #buf, (int)(buf).len,                     \
              (buf).data ? (buf).data : "", s_);                            \
      cur_failed = 1;                                                       \
    }                                                                       \
  } while (0)


/* ---- call records ------------------------------------------------------- */

static int order_seq; /* completion order across all calls */

static inline void on_flag(void *flag) { (*(int *)flag)++; }
static inline void on_client_closed(mrpc_client_t *c, void *flag) {
  CHECK(c == NULL);
  on_flag(flag);
}
static inline void on_server_closed(mrpc_server_t *s, void *flag) {
  CHECK(s == NULL); /* already freed */
  on_flag(flag);
}

/* What one call's callback saw. */
typedef struct rec_s {
  int n;        /* callback invocations: must end at exactly 1 */
  int status;
  int order;
  int has_reply;
  uint8_t flags, serialize;
  uint64_t seq;
  size_t wire_len;
  mrpc_buf_t payload, path, method, err;
  int *done;              /* incremented on each invocation when set */
  mrpc_client_t *close_c; /* closed from inside the callback when set */
  int *close_flag;
  mrpc_client_t *call_c;  /* makes a new call from inside the callback */
  struct rec_s *call_rec;
  int call_rc;
  mrpc_client_t *cancel_c; /* cancels another call from inside the callback */
  uint64_t cancel_id;
  int cancel_rc;
} rec_t;

static inline void buf_set(mrpc_buf_t *b, const char *p, size_t n) {
  b->len = 0;
  CHECK_EQ_INT(mrpc_buf_append(b, p, n), 0);
}

static inline void on_call(int status, const mrpc_frame_t *f, void *ud) {
  rec_t *r = ud;
  const char *e;
  size_t el = 0;

  r->n++;
  r->status = status;
  r->order = ++order_seq;
  CHECK(status == 0 ? f != NULL : f == NULL);
  if (f) {
    r->has_reply = 1;
    r->flags = f->flags;
    r->serialize = f->serialize;
    r->seq = f->seq;
    r->wire_len = f->wire_payload_len;
    buf_set(&r->payload, f->payload, f->payload_len);
    buf_set(&r->path, f->path, f->path_len);
    buf_set(&r->method, f->method, f->method_len);
    if ((e = mrpc_frame_error(f, &el)) != NULL) buf_set(&r->err, e, el);
  }
  if (r->done) (*r->done)++;
  if (r->call_c) {
    mrpc_call_args_t a;
    memset(&a, 0, sizeof a);
    a.service = "Echo";
    a.method = "Echo";
    a.payload = "again";
    a.payload_len = 5;
    r->call_rc = mrpc_client_call(r->call_c, &a, on_call, r->call_rec, NULL);
    r->call_c = NULL;
  }
  if (r->cancel_c) {
    r->cancel_rc = mrpc_client_cancel(r->cancel_c, r->cancel_id);
    r->cancel_c = NULL;
  }
  if (r->close_c) {
    mrpc_client_t *c = r->close_c;
    r->close_c = NULL;
    mrpc_client_close(c, on_client_closed, r->close_flag);
  }
}

static inline void rec_free(rec_t *r) {
  mrpc_buf_free(&r->payload);
  mrpc_buf_free(&r->path);
  mrpc_buf_free(&r->method);
  mrpc_buf_free(&r->err);
}

/* Sends service.method with a raw payload (serialize NONE). */
static inline int call_ex(mrpc_client_t *c, const char *svc,
                          const char *method, const char *pay, size_t len,
                          uint64_t timeout, rec_t *r, uint64_t *id) {
  mrpc_call_args_t a;

  memset(&a, 0, sizeof a);
  a.service = svc;
  a.method = method;
  a.payload = pay;
  a.payload_len = len;
  a.serialize = MRPC_SERIALIZE_NONE;
  a.timeout_ms = timeout;
  return mrpc_client_call(c, &a, on_call, r, id);
}

static inline int call(mrpc_client_t *c, const char *method,
                       const char *pay, rec_t *r) {
  return call_ex(c, "Echo", method, pay, strlen(pay), 0, r, NULL);
}

/* ---- the server side: handlers ------------------------------------------ */

#define MAX_HELD 16

/* What the handlers saw. Reset by each scenario. */
typedef struct hctx_s {
  int echo, oneway, hold, later;
  mrpc_req_t *held[MAX_HELD]; /* requests held by Hold, NULL once answered */
  int nheld;
  uint64_t held_timeout, held_deadline;
  mrpc_req_t *later_req;
  int logs;
  char last_log[256];
  void *kill;  /* the srv_t that Echo.Kill closes */
  int kill_rc; /* what Echo.Kill's reply returned */
} hctx_t;

static hctx_t H;
static uv_timer_t later_timer;

/* Echo.Echo and friends: answers at once with the request's payload. */
static inline void h_echo(mrpc_req_t *req, void *ud) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  hctx_t *h = ud;

  h->echo++;
  if (mrpc_req_oneway(req)) h->oneway++;
  CHECK_EQ_INT(mrpc_req_reply(req, f->payload, f->payload_len, NULL, 0), 0);
}

/* Echo.Hold: keeps the request; the scenario answers it. */
static inline void h_hold(mrpc_req_t *req, void *ud) {
  hctx_t *h = ud;

  h->hold++;
  h->held_timeout = mrpc_req_timeout(req);
  h->held_deadline = mrpc_req_deadline(req);
  if (h->nheld < MAX_HELD) h->held[h->nheld++] = req;
  else mrpc_req_drop(req);
}

static inline void on_later(uv_timer_t *t) {
  hctx_t *h = t->data;
  mrpc_req_t *req = h->later_req;

  h->later_req = NULL;
  /* The request's bytes were detached: the payload is still readable. */
  CHECK_EQ_INT(mrpc_req_reply(req, mrpc_req_frame(req)->payload,
                              mrpc_req_frame(req)->payload_len, NULL, 0), 0);
}

/* Echo.Later: answers 20 ms later from a timer. */
static inline void h_later(mrpc_req_t *req, void *ud) {
  hctx_t *h = ud;

  h->later++;
  h->later_req = req;
  later_timer.data = h;
  uv_timer_start(&later_timer, on_later, 20, 0);
}

/* Echo.Fail: an error with a payload beside it. */
static inline void h_fail(mrpc_req_t *req, void *ud) {
  (void)ud;
  CHECK_EQ_INT(mrpc_req_error(req, "boom", "partial", 7, NULL, 0), 0);
}

/* Echo.Kill: closes the whole server from inside a handler, then answers. */
static inline void h_kill(mrpc_req_t *req, void *ud);

/* Answers (and forgets) held request `i`; returns what mrpc_req_reply did. */
static inline int reply_held(int i, const char *pay) {
  mrpc_req_t *req = H.held[i];

  if (!req) return -1;
  H.held[i] = NULL;
  return mrpc_req_reply(req, pay, strlen(pay), NULL, 0);
}

/* Releases whatever a scenario left held (after a failure, say). */
static inline void drop_held(void) {
  int i;

  for (i = 0; i < H.nheld; i++) {
    if (H.held[i]) mrpc_req_drop(H.held[i]);
    H.held[i] = NULL;
  }
  if (H.later_req) {
    uv_timer_stop(&later_timer);
    mrpc_req_drop(H.later_req);
    H.later_req = NULL;
  }
}

static inline void quiet_log(void *ud, int level, const char *msg) {
  hctx_t *h = ud;

  (void)level;
  h->logs++;
  snprintf(h->last_log, sizeof h->last_log, "%s", msg);
}

/* A server with the Echo service. */
typedef struct srv_s {
  mrpc_server_t *s;
  char addr[320];
  int closed;
} srv_t;

static inline int srv_new(srv_t *v, const mrpc_server_opts_t *opts) {
  mrpc_server_opts_t o;

  memset(v, 0, sizeof *v);
  if (opts) o = *opts;
  else memset(&o, 0, sizeof o);
  o.log = quiet_log;
  o.log_udata = &H;
  if (mrpc_server_new(&loop, &o, &v->s) != 0) return -1;
  CHECK_EQ_INT(mrpc_server_register(v->s, "Echo", "Echo", h_echo, &H), 0);
  CHECK_EQ_INT(mrpc_server_register(v->s, "Echo", "Hold", h_hold, &H), 0);
  CHECK_EQ_INT(mrpc_server_register(v->s, "Echo", "Later", h_later, &H), 0);
  CHECK_EQ_INT(mrpc_server_register(v->s, "Echo", "Fail", h_fail, &H), 0);
  CHECK_EQ_INT(mrpc_server_register(v->s, "Echo", "Kill", h_kill, &H), 0);
  return 0;
}

/* A server listening on `address` (tcp), its address in v->addr. */
static inline int srv_start(srv_t *v, const mrpc_server_opts_t *opts,
                            const char *address) {
  int r;

  if (srv_new(v, opts) != 0) return -1;
  r = mrpc_server_listen(v->s, "tcp", address);
  CHECK_EQ_INT(r, 0);
  if (r == 0) CHECK_EQ_INT(mrpc_server_address(v->s, 0, v->addr, sizeof v->addr), 0);
  return r;
}

static inline void srv_close(srv_t *v) {
  if (!v->s) return;
  drop_held();
  mrpc_server_close(v->s, on_server_closed, &v->closed);
  v->s = NULL;
  WAIT(v->closed == 1);
  CHECK_EQ_INT(v->closed, 1);
}

static inline void h_kill(mrpc_req_t *req, void *ud) {
  hctx_t *h = ud;
  srv_t *v = h->kill;

  mrpc_server_close(v->s, on_server_closed, &v->closed);
  v->s = NULL;
  h->kill_rc = mrpc_req_reply(req, "x", 1, NULL, 0);
}

static inline int port_of(const char *addr) {
  const char *p = strrchr(addr, ':');
  return p ? atoi(p + 1) : -1;
}

static inline mrpc_client_t *cli_new(const char *addr,
                                     const mrpc_client_opts_t *o) {
  mrpc_client_t *c = NULL;

  CHECK_EQ_INT(mrpc_client_new(&loop, addr, o, &c), 0);
  return c;
}

static inline void cli_close(mrpc_client_t *c) {
  int closed = 0;

  if (!c) return;
  mrpc_client_close(c, on_client_closed, &closed);
  WAIT(closed == 1);
  CHECK_EQ_INT(closed, 1);
}

static inline void begin(void) {
  memset(&H, 0, sizeof H);
  order_seq = 0;
}

#endif /* MRPC_SPEC_TRANSPORT_HARNESS_H */
