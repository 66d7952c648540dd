/* registry/etcd/etcd_watch.c: list and watch for the etcd backend: range
 * reads over a service's prefix, and the watch stream that reports the
 * service's list whenever it changes.
 *
 * list() is one POST /v3/kv/range over the prefix, reported as entries.
 *
 * A watch holds one long POST /v3/watch over the service's prefix. Once
 * etcd confirms it (created), and after every batch of events, it re-reads
 * the whole range and reports that list: simple, and never out of order.
 * When the stream breaks it reports nothing and reconnects with backoff
 * (0.2 s doubling to 5 s), as it does when a re-read fails.
 *
 * It calls down into etcd_op.c (ops, posts, liveness), etcd_json.c (the
 * requests, and the parsing of range answers and stream lines), http.c
 * (cancel) and registry/key.c. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "registry/etcd/etcd.h"

#define MAX_WATCH_LINE (4u * 1024 * 1024) /* one event batch on the stream */

typedef struct watch_s {
  mrpc_watch_t head;      /* first: what the caller holds */
  struct watch_s *prev, *next;
  etcd_t *e;              /* borrowed: the backend that lists it in e->watches */
  char *prefix;           /* owned, freed in watch_closed */
  mrpc_reg_list_cb cb;
  void *udata;            /* the caller's, never freed here */
  uv_timer_t timer;       /* reconnect with backoff, or re-read now; its close frees w */
  mrpc__http_req_t *stream, *range; /* in flight; canceled by unwatch */
  mrpc_buf_t line;        /* owned, freed in watch_closed: a partial line of the stream */
  int created, dirty;
  unsigned backoff;
} watch_t;

/* ---- range reads -------------------------------------------------------- */

/* Reports the kvs of a range answer to cb as entries of `service`. */
static int report_range(const cJSON *j, const char *service, mrpc_reg_list_cb cb,
                        void *udata) {
  etcd_range_t rg;
  int rc = mrpc__etcd_range_parse(j, service, &rg);
  if (rc == 0) cb(0, rg.list, rg.n, udata);
  mrpc__etcd_range_free(&rg);
  return rc;
}

static const char *service_of(const char *prefix, char *buf, size_t len) {
  size_t n = strlen(prefix);
  const char *p;
  snprintf(buf, len, "%.*s", (int)(n ? n - 1 : 0), prefix); /* drop the '/' */
  p = strrchr(buf, '/');
  return p ? p + 1 : buf;
}

static void on_listed(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  etcd_t *e = o->e;
  char buf[600];
  int err;
  cJSON *j = mrpc__etcd_answer(status, code, body, len, &err);
  o->req = NULL;
  UNLINK(e->ops, o);
  /* The key "base/" lists every service. */
  if (j) err = report_range(j, strlen(o->key) == strlen(e->r->base) + 1 ? ""
                                : service_of(o->key, buf, sizeof buf), o->lcb, o->udata);
  if (err < 0) o->lcb(err, NULL, 0, o->udata);
  cJSON_Delete(j);
  mrpc__etcd_op_free(o);
}

int mrpc__etcd_list(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                    void *udata) {
  etcd_t *e = r->backend;
  char prefix[600];
  cJSON *q;
  op_t *o;
  int rc;
  if (e->closing) return MRPC_ECLOSED;
  if ((rc = mrpc__reg_key(r, service, NULL, prefix, sizeof prefix)) < 0) return rc;
  if (!(o = mrpc__etcd_op_new(e, OP_LIST, prefix, NULL, udata))) return MRPC_ENOMEM;
  o->lcb = cb;
  if ((rc = mrpc__etcd_q_range(prefix, &q)) == 0)
    rc = mrpc__etcd_post(e, "/v3/kv/range", q, REQ_TIMEOUT_MS, NULL, on_listed, o, &o->req);
  if (rc < 0) mrpc__etcd_op_drop(o);
  return rc;
}

/* ---- watches ------------------------------------------------------------ */

static void watch_kick(uv_timer_t *t);

static void watch_retry(watch_t *w) {
  w->backoff = next_backoff(w->backoff);
  uv_timer_start(&w->timer, watch_kick, w->backoff, 0);
}

static void on_watch_range(int status, long code, const char *body, size_t len, void *ud) {
  watch_t *w = ud;
  char buf[600];
  int err;
  cJSON *j = mrpc__etcd_answer(status, code, body, len, &err);
  w->range = NULL;
  if (j) {
    /* Arm the next re-read before reporting: the callback may unwatch. */
    if (w->dirty && w->stream && w->created) uv_timer_start(&w->timer, watch_kick, 0, 0);
    err = report_range(j, service_of(w->prefix, buf, sizeof buf), w->cb, w->udata);
    cJSON_Delete(j);
    if (err == 0) return;
  }
  /* etcd went away (or answered nonsense): report nothing, read again. */
  w->dirty = 1;
  watch_retry(w);
}

static int on_watch_data(const char *p, size_t n, void *ud) {
  watch_t *w = ud;
  char *nl;
  if (w->line.len + n > MAX_WATCH_LINE) return MRPC_ETOOBIG;
  if (mrpc_buf_append(&w->line, p, n) < 0) return MRPC_ENOMEM;
  while ((nl = memchr(w->line.data, '\n', w->line.len)) != NULL) {
    size_t ll = (size_t)(nl - w->line.data);
    int rc = mrpc__etcd_watch_line(w->line.data, ll);
    mrpc_buf_consume(&w->line, ll + 1);
    if (rc < 0) return rc; /* an error object, or the watch ended */
    if (rc & WATCH_CREATED) {
      w->created = 1;
      w->dirty = 1;
      w->backoff = 0;
    }
    if (rc & WATCH_EVENTS) w->dirty = 1;
  }
  /* Not from inside libcurl's callback: through the timer. */
  if (w->dirty && w->created && !w->range) uv_timer_start(&w->timer, watch_kick, 0, 0);
  return 0;
}

static void on_watch_end(int status, long code, const char *body, size_t len, void *ud) {
  watch_t *w = ud;
  w->stream = NULL;
  w->created = 0;
  w->line.len = 0;
  watch_retry(w);
}

static void watch_kick(uv_timer_t *t) {
  watch_t *w = t->data;
  etcd_t *e = w->e;
  cJSON *q;
  int rc;
  if (!w->stream) {
    if ((rc = mrpc__etcd_q_watch(w->prefix, &q)) == 0)
      rc = mrpc__etcd_post(e, "/v3/watch", q, 0, on_watch_data, on_watch_end, w, &w->stream);
    if (rc < 0) watch_retry(w);
    return;
  }
  if (w->created && w->dirty && !w->range) {
    w->dirty = 0;
    if ((rc = mrpc__etcd_q_range(w->prefix, &q)) == 0)
      rc = mrpc__etcd_post(e, "/v3/kv/range", q, REQ_TIMEOUT_MS, NULL, on_watch_range, w,
                           &w->range);
    if (rc < 0) {
      w->dirty = 1;
      watch_retry(w);
    }
  }
}

static void watch_closed(uv_handle_t *t) {
  watch_t *w = t->data;
  etcd_t *e = w->e;
  free(w->prefix);
  mrpc_buf_free(&w->line);
  free(w);
  mrpc__etcd_live_down(e);
}

void mrpc__etcd_unwatch(mrpc_watch_t *hw) {
  watch_t *w = (watch_t *)hw;
  etcd_t *e = w->e;
  UNLINK(e->watches, w);
  if (w->stream) mrpc__http_cancel(w->stream);
  if (w->range) mrpc__http_cancel(w->range);
  w->stream = w->range = NULL;
  uv_close((uv_handle_t *)&w->timer, watch_closed);
}

void mrpc__etcd_unwatch_all(etcd_t *e) {
  while (e->watches) mrpc__etcd_unwatch(&e->watches->head);
}

int mrpc__etcd_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                     void *udata, mrpc_watch_t **out) {
  etcd_t *e = r->backend;
  char prefix[600];
  watch_t *w;
  int rc;
  if (e->closing) return MRPC_ECLOSED;
  if ((rc = mrpc__reg_key(r, service, NULL, prefix, sizeof prefix)) < 0) return rc;
  if (!(w = calloc(1, sizeof *w)) || !(w->prefix = strdup(prefix))) {
    free(w);
    return MRPC_ENOMEM;
  }
  w->head.reg = r;
  w->e = e;
  w->cb = cb;
  w->udata = udata;
  uv_timer_init(r->loop, &w->timer);
  w->timer.data = w;
  e->live++;
  LINK(e->watches, w);
  uv_timer_start(&w->timer, watch_kick, 0, 0);
  *out = &w->head;
  return 0;
}
