/* registry/etcd/etcd_op.c: the etcd backend's state (etcd_t) and the
 * plumbing that both its sides (etcd_register.c, etcd_watch.c) stand on:
 * the caller operations in flight (op_t), the POST of a JSON message, the
 * defer timer that reports an operation finished without HTTP outside the
 * call that made it, and the backend's lifetime: the goodbyes of close(),
 * the closing of the HTTP client, and the count of open handles whose
 * last close ends what is still pending and frees the backend.
 *
 * It calls only down, into http.c and cJSON. Whatever it must tell a
 * caller goes through the callbacks it was handed: an op's cb or lcb, and
 * the registry's close callback in etcd_t. */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "registry/etcd/etcd.h"

/* ---- operations ---------------------------------------------------------- */

op_t *mrpc__etcd_op_new(etcd_t *e, int kind, const char *key, mrpc_reg_cb cb, void *udata) {
  op_t *o = calloc(1, sizeof *o);
  if (!o || (key && !(o->key = strdup(key)))) {
    free(o);
    return NULL;
  }
  o->e = e;
  o->kind = kind;
  o->cb = cb;
  o->udata = udata;
  LINK(e->ops, o);
  return o;
}

void mrpc__etcd_op_free(op_t *o) {
  free(o->key);
  free(o);
}

void mrpc__etcd_op_drop(op_t *o) {
  UNLINK(o->e->ops, o);
  mrpc__etcd_op_free(o);
}

void mrpc__etcd_op_end(op_t *o, int status) {
  UNLINK(o->e->ops, o);
  if (o->cb) o->cb(status, o->udata);
  mrpc__etcd_op_free(o);
}

/* Reports one ready op per pass (its callback may change the list, or
 * close the registry), then goes again while any is left. */
static void on_defer(uv_timer_t *t) {
  etcd_t *e = t->data;
  op_t *o, *next;
  for (o = e->ops; o; o = next) {
    next = o->next;
    if (o->ready) {
      mrpc__etcd_op_end(o, o->status);
      break; /* the list may have changed: go again */
    }
  }
  if (e->closing) return;
  for (o = e->ops; o; o = o->next)
    if (o->ready) {
      uv_timer_start(&e->defer, on_defer, 0, 0);
      break;
    }
}

void mrpc__etcd_op_ready(op_t *o, int status) {
  o->ready = 1;
  o->status = status;
  if (!o->e->closing) uv_timer_start(&o->e->defer, on_defer, 0, 0);
}

/* ---- posts --------------------------------------------------------------- */

int mrpc__etcd_post(etcd_t *e, const char *path, cJSON *o, long timeout,
                    mrpc__http_data_cb on_data, mrpc__http_cb cb, void *udata,
                    mrpc__http_req_t **out) {
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  int rc;
  cJSON_Delete(o);
  if (!s) return MRPC_ENOMEM;
  rc = mrpc__http_post(e->http, path, s, timeout, on_data, cb, udata, out);
  cJSON_free(s);
  return rc;
}

/* ---- the backend's lifetime ---------------------------------------------- */

int mrpc__etcd_new(mrpc_registry_t *r, const char *host, int port) {
  etcd_t *e;
  int rc;
  if (!(e = calloc(1, sizeof *e))) return MRPC_ENOMEM;
  if ((rc = mrpc__http_new(r->loop, host, port, &e->http)) < 0) {
    free(e);
    return rc;
  }
  e->r = r;
  uv_timer_init(r->loop, &e->defer);
  e->defer.data = e;
  e->live = 2; /* http + defer */
  r->backend = e;
  return 0;
}

void mrpc__etcd_live_down(etcd_t *e) {
  mrpc_reg_cb cb;
  void *ud;
  if (--e->live > 0) return;
  /* Everything is closed: end what was still pending, then say so. */
  while (e->ops) {
    op_t *o = e->ops;
    UNLINK(e->ops, o);
    if (o->lcb) o->lcb(MRPC_ECLOSED, NULL, 0, o->udata);
    else if (o->cb) o->cb(o->ready ? o->status : MRPC_ECLOSED, o->udata);
    mrpc__etcd_op_free(o);
  }
  cb = e->close_cb;
  ud = e->close_udata;
  free(e);
  if (cb) cb(0, ud);
}

static void defer_closed(uv_handle_t *h) { mrpc__etcd_live_down(h->data); }

static void http_closed(void *ud) { mrpc__etcd_live_down(ud); }

static void close_rest(etcd_t *e) {
  mrpc__http_close(e->http, http_closed, e);
  uv_close((uv_handle_t *)&e->defer, defer_closed);
}

void mrpc__etcd_ops_cancel(etcd_t *e) {
  op_t *o;
  for (o = e->ops; o; o = o->next) {
    if (o->req) mrpc__http_cancel(o->req);
    o->req = NULL;
  }
  uv_timer_stop(&e->defer);
}

static void on_bye(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  etcd_t *e = o->e;
  mrpc__etcd_op_drop(o);
  if (--e->byes == 0) close_rest(e);
}

void mrpc__etcd_bye(etcd_t *e, const char *path, cJSON *q) {
  op_t *o = mrpc__etcd_op_new(e, OP_BYE, NULL, NULL, NULL);
  if (!o) {
    cJSON_Delete(q);
    return;
  }
  if (mrpc__etcd_post(e, path, q, BYE_TIMEOUT_MS, NULL, on_bye, o, &o->req) < 0) {
    mrpc__etcd_op_drop(o);
    return;
  }
  e->byes++;
}

void mrpc__etcd_finish(etcd_t *e) {
  if (e->byes == 0) close_rest(e);
}
