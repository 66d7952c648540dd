/* registry_etcd.c: the etcd v3 registry backend (scheme "etcd"): open and
 * close, register/update/unregister, and the leases that keep registered
 * instances alive. It speaks through etcd's JSON gateway (/v3/..., every
 * call a POST, keys and values base64, 64-bit integers as JSON strings:
 * lease IDs stay strings here from end to end), whose helpers live here
 * too. HTTP comes from registry_http.c; list and watch are in
 * registry_etcd_watch.c; what the two share is in registry_etcd.h.
 *
 * An instance (inst_t) is a small state machine: grant a lease, put the
 * key under it, keep the lease alive every TTL/3. When a keepalive finds
 * the lease gone (no TTL, TTL 0, or an error answer such as 404 code 5) or
 * etcd unreachable, it grants a new lease and puts again, with a backoff of
 * 0.2 s doubling to 5 s while that fails. The register callback reports the
 * first attempt: 0 after the first put, or the error of the first failure;
 * in the latter case the instance keeps retrying in the background until
 * it is unregistered or the registry closed, like a later outage.
 *
 * update() of an instance not registered by this registry, or register()
 * of one that is, returns MRPC_EINVAL. close() deletes every key this
 * registry registered and revokes its leases (one attempt, 1 s at most),
 * ends operations in flight with MRPC_ECLOSED, then frees everything.
 *
 * libcurl needs curl_global_init() once per process before any other call;
 * it is not thread-safe, so the first open() does it (a static flag: the
 * one mutable global in the core, for a process-wide library state). The
 * matching curl_global_cleanup() is left to process exit. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include "registry/etcd/etcd.h"

#define BYE_TIMEOUT_MS 1000L   /* the goodbyes of close() */

struct inst_s {
  struct inst_s *prev, *next;
  etcd_t *e;
  char *key, *meta;       /* owned */
  unsigned ttl;
  unsigned gen, put_gen;  /* meta generation, and the one the last put wrote */
  char lease[32];         /* the lease ID as etcd wrote it; "" while none */
  uv_timer_t timer;       /* keepalive, or the next retry */
  mrpc__http_req_t *req;  /* grant, put or keepalive in flight */
  unsigned backoff;       /* ms; 0 after a success */
  mrpc_reg_cb cb;         /* the first report; NULL once given */
  void *udata;
};

/* ---- JSON ---------------------------------------------------- */

/* Adds `name: base64(s)`. */
int mrpc__etcd_add_b64(cJSON *o, const char *name, const char *s, size_t n) {
  char *enc = mrpc__b64_enc(s, n);
  cJSON *item = enc ? cJSON_AddStringToObject(o, name, enc) : NULL;
  free(enc);
  return item ? 0 : MRPC_ENOMEM;
}

/* Prints and frees `o`; NULL when out of memory. Free with cJSON_free. */
static char *print(cJSON *o) {
  char *s = o ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  return s;
}

/* The JSON of a successful answer, or NULL with *err set. */
cJSON *mrpc__etcd_answer(int status, long code, const char *body, size_t len, int *err) {
  cJSON *j;
  if (status < 0) {
    *err = status;
    return NULL;
  }
  if (code != 200) {
    *err = MRPC_EREMOTE;
    return NULL;
  }
  if (!(j = cJSON_ParseWithLength(body, len)) || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    *err = MRPC_EPROTO;
    return NULL;
  }
  *err = 0;
  return j;
}

const char *mrpc__etcd_jstr(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* POSTs a JSON object (consumed). */
int mrpc__etcd_post(etcd_t *e, const char *path, cJSON *o, long timeout,
                    mrpc__http_data_cb on_data, mrpc__http_cb cb, void *udata,
                    mrpc__http_req_t **out) {
  char *s = print(o);
  int rc;
  if (!s) return MRPC_ENOMEM;
  rc = mrpc__http_post(e->http, path, s, timeout, on_data, cb, udata, out);
  cJSON_free(s);
  return rc;
}

static cJSON *obj_lease(const char *lease) {
  cJSON *o = cJSON_CreateObject();
  if (o && !cJSON_AddStringToObject(o, "ID", lease)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static cJSON *obj_put(const char *key, const char *meta, const char *lease) {
  cJSON *o = cJSON_CreateObject();
  if (!o || mrpc__etcd_add_b64(o, "key", key, strlen(key)) < 0 ||
      mrpc__etcd_add_b64(o, "value", meta, strlen(meta)) < 0 ||
      (*lease && !cJSON_AddStringToObject(o, "lease", lease))) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static cJSON *obj_key(const char *key) {
  cJSON *o = cJSON_CreateObject();
  if (!o || mrpc__etcd_add_b64(o, "key", key, strlen(key)) < 0) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* ---- closing ------------------------------------------------------------ */

static void handle_closed(uv_handle_t *h) { mrpc__etcd_live_down(h->data); }

static void inst_closed(uv_handle_t *t) {
  inst_t *i = t->data;
  etcd_t *e = i->e;
  free(i->key);
  free(i->meta);
  free(i);
  mrpc__etcd_live_down(e);
}

void mrpc__etcd_op_free(op_t *o) {
  free(o->key);
  free(o);
}

/* ---- instances ----------------------------------------------------------- */

static void inst_grant(inst_t *i);
static void inst_put(inst_t *i);

static void inst_report(inst_t *i, int status) {
  mrpc_reg_cb cb = i->cb;
  i->cb = NULL;
  if (cb) cb(status, i->udata);
}

static void inst_tick(uv_timer_t *t);

/* A step failed: start over with a new lease after the backoff. The report
 * comes last: the callback may unregister or close. */
static void inst_fail(inst_t *i, int err) {
  i->lease[0] = 0;
  i->backoff = next_backoff(i->backoff);
  uv_timer_start(&i->timer, inst_tick, i->backoff, 0);
  inst_report(i, err);
}

static void on_keepalive(int status, long code, const char *body, size_t len, void *ud) {
  inst_t *i = ud;
  int err;
  cJSON *j = mrpc__etcd_answer(status, code, body, len, &err);
  const cJSON *res = j ? cJSON_GetObjectItemCaseSensitive(j, "result") : NULL;
  const char *ttl = res ? mrpc__etcd_jstr(res, "TTL") : NULL;
  i->req = NULL;
  if (ttl && strcmp(ttl, "0") != 0) {
    uv_timer_start(&i->timer, inst_tick, i->ttl * 1000u / 3, 0);
  } else {
    /* The lease is gone, or etcd did not answer: a new lease, a new put. */
    i->lease[0] = 0;
    inst_grant(i);
  }
  cJSON_Delete(j);
}

static void inst_tick(uv_timer_t *t) {
  inst_t *i = t->data;
  cJSON *o;
  int rc;
  if (!i->lease[0]) {
    inst_grant(i);
    return;
  }
  o = obj_lease(i->lease);
  rc = mrpc__etcd_post(i->e, "/v3/lease/keepalive", o, REQ_TIMEOUT_MS, NULL, on_keepalive, i,
                       &i->req);
  if (rc < 0) inst_fail(i, rc);
}

static void on_put(int status, long code, const char *body, size_t len, void *ud) {
  inst_t *i = ud;
  int err;
  cJSON *j = mrpc__etcd_answer(status, code, body, len, &err);
  i->req = NULL;
  cJSON_Delete(j);
  if (err < 0) {
    inst_fail(i, err);
    return;
  }
  i->backoff = 0;
  if (i->put_gen != i->gen) inst_put(i); /* updated meanwhile */
  else uv_timer_start(&i->timer, inst_tick, i->ttl * 1000u / 3, 0);
  inst_report(i, 0);
}

static void inst_put(inst_t *i) {
  cJSON *o = obj_put(i->key, i->meta, i->lease);
  int rc;
  i->put_gen = i->gen;
  if (!o) rc = MRPC_ENOMEM;
  else rc = mrpc__etcd_post(i->e, "/v3/kv/put", o, REQ_TIMEOUT_MS, NULL, on_put, i, &i->req);
  if (rc < 0) inst_fail(i, rc);
}

static void on_grant(int status, long code, const char *body, size_t len, void *ud) {
  inst_t *i = ud;
  int err;
  cJSON *j = mrpc__etcd_answer(status, code, body, len, &err);
  const char *id = j ? mrpc__etcd_jstr(j, "ID") : NULL;
  i->req = NULL;
  if (err == 0 && (!id || strlen(id) >= sizeof i->lease)) err = MRPC_EPROTO;
  if (err < 0) {
    cJSON_Delete(j);
    inst_fail(i, err);
    return;
  }
  strcpy(i->lease, id);
  cJSON_Delete(j);
  inst_put(i);
}

static void inst_grant(inst_t *i) {
  char ttl[16];
  cJSON *o = cJSON_CreateObject();
  int rc = MRPC_ENOMEM;
  snprintf(ttl, sizeof ttl, "%u", i->ttl);
  if (o && cJSON_AddStringToObject(o, "TTL", ttl))
    rc = mrpc__etcd_post(i->e, "/v3/lease/grant", o, REQ_TIMEOUT_MS, NULL, on_grant, i,
                         &i->req);
  else cJSON_Delete(o);
  if (rc < 0) inst_fail(i, rc);
}

static inst_t *inst_find(etcd_t *e, const char *key) {
  inst_t *i;
  for (i = e->insts; i; i = i->next)
    if (strcmp(i->key, key) == 0) return i;
  return NULL;
}

/* Forgets an instance: nothing more is sent for it. */
static void inst_drop(inst_t *i) {
  UNLINK(i->e->insts, i);
  if (i->req) mrpc__http_cancel(i->req);
  i->req = NULL;
  uv_close((uv_handle_t *)&i->timer, inst_closed);
}

static int etcd_reg(mrpc_registry_t *r, const char *service, const char *addr, const char *meta,
                    unsigned ttl_s, mrpc_reg_cb cb, void *udata) {
  etcd_t *e = r->backend;
  char key[600];
  inst_t *i;
  int rc;
  if (e->closing) return MRPC_ECLOSED;
  if ((rc = mrpc__reg_key(r, service, addr, key, sizeof key)) < 0) return rc;
  if (inst_find(e, key)) return MRPC_EINVAL;
  if (!(i = calloc(1, sizeof *i))) return MRPC_ENOMEM;
  if (!(i->key = strdup(key)) || !(i->meta = strdup(meta))) {
    free(i->key);
    free(i);
    return MRPC_ENOMEM;
  }
  i->e = e;
  i->ttl = ttl_s;
  i->cb = cb;
  i->udata = udata;
  uv_timer_init(r->loop, &i->timer);
  i->timer.data = i;
  e->live++;
  LINK(e->insts, i);
  inst_grant(i); /* a failure here is reported from the backoff path */
  return 0;
}

/* ---- operations --------------------------------------------------------- */

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

/* Ends an op that is still linked: unlinks, reports, frees. */
static void op_end(op_t *o, int status) {
  UNLINK(o->e->ops, o);
  if (o->cb) o->cb(status, o->udata);
  mrpc__etcd_op_free(o);
}

static void on_defer(uv_timer_t *t) {
  etcd_t *e = t->data;
  op_t *o, *next;
  for (o = e->ops; o; o = next) {
    next = o->next;
    if (o->ready) {
      op_end(o, o->status);
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

static void on_op_put(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  int err;
  cJSON_Delete(mrpc__etcd_answer(status, code, body, len, &err));
  o->req = NULL;
  op_end(o, err);
}

static int etcd_update(mrpc_registry_t *r, const char *service, const char *addr,
                       const char *meta, mrpc_reg_cb cb, void *udata) {
  etcd_t *e = r->backend;
  char key[600], *m;
  inst_t *i;
  op_t *o;
  int rc;
  if (e->closing) return MRPC_ECLOSED;
  if ((rc = mrpc__reg_key(r, service, addr, key, sizeof key)) < 0) return rc;
  if (!(i = inst_find(e, key))) return MRPC_EINVAL;
  if (!(m = strdup(meta))) return MRPC_ENOMEM;
  if (!(o = mrpc__etcd_op_new(e, OP_UPDATE, NULL, cb, udata))) {
    free(m);
    return MRPC_ENOMEM;
  }
  free(i->meta);
  i->meta = m;
  i->gen++;
  if (!i->lease[0]) {
    /* (Re)registering: its put writes the new meta. */
    o->ready = 1;
    uv_timer_start(&e->defer, on_defer, 0, 0);
    return 0;
  }
  rc = mrpc__etcd_post(e, "/v3/kv/put", obj_put(key, meta, i->lease), REQ_TIMEOUT_MS, NULL,
                       on_op_put, o, &o->req);
  if (rc < 0) {
    UNLINK(e->ops, o);
    mrpc__etcd_op_free(o);
    return rc;
  }
  /* A registration put in flight sees gen moved and writes again. */
  return 0;
}

static void on_revoked(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  o->req = NULL;
  op_end(o, o->status); /* the delete's result; a revoke error is harmless */
}

static void on_deleted(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  int err;
  cJSON_Delete(mrpc__etcd_answer(status, code, body, len, &err));
  o->req = NULL;
  o->status = err;
  if (o->lease[0] &&
      mrpc__etcd_post(o->e, "/v3/lease/revoke", obj_lease(o->lease), REQ_TIMEOUT_MS, NULL,
                      on_revoked, o, &o->req) == 0)
    return;
  op_end(o, err);
}

static int etcd_unreg(mrpc_registry_t *r, const char *service, const char *addr,
                      mrpc_reg_cb cb, void *udata) {
  etcd_t *e = r->backend;
  char key[600];
  inst_t *i;
  op_t *o;
  int rc;
  if (e->closing) return MRPC_ECLOSED;
  if ((rc = mrpc__reg_key(r, service, addr, key, sizeof key)) < 0) return rc;
  if (!(o = mrpc__etcd_op_new(e, OP_UNREG, NULL, cb, udata))) return MRPC_ENOMEM;
  if ((i = inst_find(e, key))) strcpy(o->lease, i->lease);
  rc = mrpc__etcd_post(e, "/v3/kv/deleterange", obj_key(key), REQ_TIMEOUT_MS, NULL, on_deleted,
                       o, &o->req);
  if (rc < 0) {
    UNLINK(e->ops, o);
    mrpc__etcd_op_free(o);
    return rc;
  }
  if (i) {
    /* A registration still in progress ends here. */
    inst_drop(i);
    if (i->cb) {
      op_t *k = mrpc__etcd_op_new(e, OP_UPDATE, NULL, i->cb, i->udata);
      i->cb = NULL;
      if (k) {
        k->ready = 1;
        k->status = MRPC_ECANCELED;
        uv_timer_start(&e->defer, on_defer, 0, 0);
      }
    }
  }
  return 0;
}

/* ---- open and close ----------------------------------------------------- */

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

static void http_closed(void *ud) { mrpc__etcd_live_down(ud); }

static void close_rest(etcd_t *e) {
  mrpc__http_close(e->http, http_closed, e);
  uv_close((uv_handle_t *)&e->defer, handle_closed);
}

static void on_bye(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  etcd_t *e = o->e;
  UNLINK(e->ops, o);
  mrpc__etcd_op_free(o);
  if (--e->byes == 0) close_rest(e);
}

static void bye(etcd_t *e, const char *path, cJSON *q) {
  op_t *o = mrpc__etcd_op_new(e, OP_BYE, NULL, NULL, NULL);
  if (!o) {
    cJSON_Delete(q);
    return;
  }
  if (mrpc__etcd_post(e, path, q, BYE_TIMEOUT_MS, NULL, on_bye, o, &o->req) < 0) {
    UNLINK(e->ops, o);
    mrpc__etcd_op_free(o);
    return;
  }
  e->byes++;
}

static void etcd_close(mrpc_registry_t *r, mrpc_reg_cb cb, void *udata) {
  etcd_t *e = r->backend;
  op_t *o;
  e->closing = 1;
  e->close_cb = cb;
  e->close_udata = udata;
  while (e->watches) mrpc__etcd_unwatch(&e->watches->head);
  for (o = e->ops; o; o = o->next) {
    if (o->req) mrpc__http_cancel(o->req);
    o->req = NULL;
  }
  uv_timer_stop(&e->defer);
  while (e->insts) {
    inst_t *i = e->insts;
    bye(e, "/v3/kv/deleterange", obj_key(i->key));
    if (i->lease[0]) bye(e, "/v3/lease/revoke", obj_lease(i->lease));
    if (i->cb) { /* never registered: ends with the close */
      op_t *k = mrpc__etcd_op_new(e, OP_UPDATE, NULL, i->cb, i->udata);
      i->cb = NULL;
      if (k) {
        k->ready = 1;
        k->status = MRPC_ECLOSED;
      }
    }
    inst_drop(i);
  }
  if (e->byes == 0) close_rest(e);
}

static int etcd_open(mrpc_registry_t *r, const char *host, int port) {
  static int curl_ready; /* see the header comment */
  etcd_t *e;
  int rc;
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return MRPC_ENOMEM;
    curl_ready = 1;
  }
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

const mrpc_registry_ops_t mrpc__etcd_ops = {
  "etcd", etcd_open, etcd_reg, etcd_update, etcd_unreg, mrpc__etcd_list,
  mrpc__etcd_watch, mrpc__etcd_unwatch, etcd_close,
};
