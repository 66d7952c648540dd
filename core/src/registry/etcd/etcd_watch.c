/* registry_etcd_watch.c: list and watch for the etcd registry backend
 * (registry_etcd.c): range reads over a service's prefix, and the watch
 * stream that reports the service's list whenever it changes.
 *
 * list() is one POST /v3/kv/range over the prefix, reported as entries.
 *
 * A watch holds one long POST /v3/watch over the service's prefix. Once
 * etcd confirms it (created), and after every batch of events, it re-reads
 * the whole range and reports that list: simple, and never out of order.
 * When the stream breaks it reports nothing and reconnects with backoff
 * (0.2 s doubling to 5 s), as it does when a re-read fails. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "registry/etcd/etcd.h"

#define MAX_WATCH_LINE (4u * 1024 * 1024) /* one event batch on the stream */

/* ---- range reads -------------------------------------------------------- */

/* The prefix's range_end: the prefix with its last byte plus one. */
static int add_range(cJSON *o, const char *prefix) {
  size_t n = strlen(prefix);
  char end[600];
  int rc;
  if (n == 0 || n >= sizeof end) return MRPC_EINVAL;
  memcpy(end, prefix, n);
  end[n - 1]++;
  if ((rc = mrpc__etcd_add_b64(o, "key", prefix, n)) < 0) return rc;
  return mrpc__etcd_add_b64(o, "range_end", end, n);
}

/* Reports the kvs of a range answer to cb as entries of `service`. */
static int report_range(const cJSON *j, const char *service, mrpc_reg_list_cb cb,
                        void *udata) {
  const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(j, "kvs"), *kv;
  mrpc_reg_entry_t *list = NULL;
  char **strs = NULL;
  size_t n = 0, cap = kvs ? (size_t)cJSON_GetArraySize(kvs) : 0, i;
  int rc = 0;
  if (kvs && !cJSON_IsArray(kvs)) return MRPC_EPROTO;
  if (cap && (!(list = calloc(cap, sizeof *list)) || !(strs = calloc(cap * 3, sizeof *strs)))) {
    free(list);
    return MRPC_ENOMEM;
  }
  cJSON_ArrayForEach(kv, kvs) {
    const char *k = mrpc__etcd_jstr(kv, "key"), *v = mrpc__etcd_jstr(kv, "value"), *slash;
    char *key = k ? mrpc__b64_dec(k) : NULL, *val = mrpc__b64_dec(v ? v : "");
    strs[3 * n] = key;
    strs[3 * n + 1] = val;
    if (!key || !val) {
      rc = MRPC_EPROTO;
      n++;
      break;
    }
    slash = strrchr(key, '/');
    list[n].service = service;
    if (!*service) { /* every service: base/Service/addr names it */
      const char *p = slash;
      while (p && p > key && p[-1] != '/') p--;
      if (!p || !(strs[3 * n + 2] = mrpc__strndup(p, (size_t)(slash - p)))) {
        rc = p ? MRPC_ENOMEM : MRPC_EPROTO;
        n++;
        break;
      }
      list[n].service = strs[3 * n + 2];
    }
    list[n].addr = slash ? slash + 1 : key;
    list[n].meta = val;
    n++;
  }
  if (rc == 0) cb(0, list, n, udata);
  for (i = 0; i < 3 * n; i++) free(strs[i]);
  free(strs);
  free(list);
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
  if (!(q = cJSON_CreateObject()) || (rc = add_range(q, prefix)) < 0) {
    cJSON_Delete(q);
    rc = q ? rc : MRPC_ENOMEM;
  } else {
    rc = mrpc__etcd_post(e, "/v3/kv/range", q, REQ_TIMEOUT_MS, NULL, on_listed, o, &o->req);
  }
  if (rc < 0) {
    UNLINK(e->ops, o);
    mrpc__etcd_op_free(o);
  }
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
    cJSON *j = ll > 1 ? cJSON_ParseWithLength(w->line.data, ll) : NULL;
    const cJSON *res = j ? cJSON_GetObjectItemCaseSensitive(j, "result") : NULL, *ev;
    mrpc_buf_consume(&w->line, ll + 1);
    if (ll <= 1) continue; /* a blank line between objects */
    if (!res || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"))) {
      cJSON_Delete(j);
      return MRPC_EREMOTE; /* an error object, or the watch ended */
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"))) {
      w->created = 1;
      w->dirty = 1;
      w->backoff = 0;
    }
    ev = cJSON_GetObjectItemCaseSensitive(res, "events");
    if (cJSON_GetArraySize(ev) > 0) w->dirty = 1;
    cJSON_Delete(j);
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
  cJSON *q, *c;
  int rc = MRPC_ENOMEM;
  if (!w->stream) {
    if ((q = cJSON_CreateObject()) && (c = cJSON_AddObjectToObject(q, "create_request")) &&
        add_range(c, w->prefix) == 0)
      rc = mrpc__etcd_post(e, "/v3/watch", q, 0, on_watch_data, on_watch_end, w, &w->stream);
    else cJSON_Delete(q);
    if (rc < 0) watch_retry(w);
    return;
  }
  if (w->created && w->dirty && !w->range) {
    w->dirty = 0;
    if ((q = cJSON_CreateObject()) && add_range(q, w->prefix) == 0)
      rc = mrpc__etcd_post(e, "/v3/kv/range", q, REQ_TIMEOUT_MS, NULL, on_watch_range, w,
                           &w->range);
    else cJSON_Delete(q);
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
