/* registry/etcd/etcd_register.c: register, update and unregister for the
 * etcd backend, and the leases that keep registered instances alive.
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
 * of one that is, returns MRPC_EINVAL. On close(), etcd.c has this file
 * say goodbye for every instance (mrpc__etcd_insts_bye).
 *
 * It calls down into etcd_op.c (ops, posts, liveness), etcd_json.c (the
 * messages), http.c (cancel) and registry/key.c. */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "registry/etcd/etcd.h"

struct inst_s {
  struct inst_s *prev, *next;
  etcd_t *e;              /* borrowed: the backend that lists it in e->insts */
  char *key, *meta;       /* owned, freed in inst_closed */
  unsigned ttl;
  unsigned gen, put_gen;  /* meta generation, and the one the last put wrote */
  char lease[32];         /* the lease ID as etcd wrote it; "" while none */
  uv_timer_t timer;       /* keepalive, or the next retry; its close frees the inst */
  mrpc__http_req_t *req;  /* grant, put or keepalive in flight; canceled by inst_drop */
  unsigned backoff;       /* ms; 0 after a success */
  mrpc_reg_cb cb;         /* the first report; NULL once given */
  void *udata;            /* the caller's, never freed here */
};

/* ---- instances ----------------------------------------------------------- */

static void inst_closed(uv_handle_t *t) {
  inst_t *i = t->data;
  etcd_t *e = i->e;
  free(i->key);
  free(i->meta);
  free(i);
  mrpc__etcd_live_down(e);
}

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
  i->req = NULL;
  if (mrpc__etcd_keepalive_ok(j)) {
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
  int rc;
  if (!i->lease[0]) {
    inst_grant(i);
    return;
  }
  rc = mrpc__etcd_post(i->e, "/v3/lease/keepalive", mrpc__etcd_q_lease(i->lease),
                       REQ_TIMEOUT_MS, NULL, on_keepalive, i, &i->req);
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
  int rc;
  i->put_gen = i->gen;
  rc = mrpc__etcd_post(i->e, "/v3/kv/put", mrpc__etcd_q_put(i->key, i->meta, i->lease),
                       REQ_TIMEOUT_MS, NULL, on_put, i, &i->req);
  if (rc < 0) inst_fail(i, rc);
}

static void on_grant(int status, long code, const char *body, size_t len, void *ud) {
  inst_t *i = ud;
  int err;
  cJSON *j = mrpc__etcd_answer(status, code, body, len, &err);
  i->req = NULL;
  if (err == 0) err = mrpc__etcd_grant_id(j, i->lease, sizeof i->lease);
  cJSON_Delete(j);
  if (err < 0) {
    inst_fail(i, err);
    return;
  }
  inst_put(i);
}

static void inst_grant(inst_t *i) {
  int rc = mrpc__etcd_post(i->e, "/v3/lease/grant", mrpc__etcd_q_grant(i->ttl),
                           REQ_TIMEOUT_MS, NULL, on_grant, i, &i->req);
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

/* Hands an instance's first report, still due, to a ready op: it ends
 * with status through the defer timer (or with the close). */
static void inst_report_later(inst_t *i, int status) {
  op_t *k;
  if (!i->cb) return;
  k = mrpc__etcd_op_new(i->e, OP_UPDATE, NULL, i->cb, i->udata);
  i->cb = NULL;
  if (k) mrpc__etcd_op_ready(k, status);
}

/* ---- the calls ----------------------------------------------------------- */

int mrpc__etcd_reg(mrpc_registry_t *r, const char *service, const char *addr,
                   const char *meta, unsigned ttl_s, mrpc_reg_cb cb, void *udata) {
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

static void on_op_put(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  int err;
  cJSON_Delete(mrpc__etcd_answer(status, code, body, len, &err));
  o->req = NULL;
  mrpc__etcd_op_end(o, err);
}

int mrpc__etcd_update(mrpc_registry_t *r, const char *service, const char *addr,
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
    mrpc__etcd_op_ready(o, 0);
    return 0;
  }
  rc = mrpc__etcd_post(e, "/v3/kv/put", mrpc__etcd_q_put(key, meta, i->lease), REQ_TIMEOUT_MS,
                       NULL, on_op_put, o, &o->req);
  if (rc < 0) {
    mrpc__etcd_op_drop(o);
    return rc;
  }
  /* A registration put in flight sees gen moved and writes again. */
  return 0;
}

static void on_revoked(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  o->req = NULL;
  mrpc__etcd_op_end(o, o->status); /* the delete's result; a revoke error is harmless */
}

static void on_deleted(int status, long code, const char *body, size_t len, void *ud) {
  op_t *o = ud;
  int err;
  cJSON_Delete(mrpc__etcd_answer(status, code, body, len, &err));
  o->req = NULL;
  o->status = err;
  if (o->lease[0] &&
      mrpc__etcd_post(o->e, "/v3/lease/revoke", mrpc__etcd_q_lease(o->lease), REQ_TIMEOUT_MS,
                      NULL, on_revoked, o, &o->req) == 0)
    return;
  mrpc__etcd_op_end(o, err);
}

int mrpc__etcd_unreg(mrpc_registry_t *r, const char *service, const char *addr,
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
  rc = mrpc__etcd_post(e, "/v3/kv/deleterange", mrpc__etcd_q_key(key), REQ_TIMEOUT_MS, NULL,
                       on_deleted, o, &o->req);
  if (rc < 0) {
    mrpc__etcd_op_drop(o);
    return rc;
  }
  if (i) {
    /* A registration still in progress ends here. */
    inst_drop(i);
    inst_report_later(i, MRPC_ECANCELED);
  }
  return 0;
}

void mrpc__etcd_insts_bye(etcd_t *e) {
  while (e->insts) {
    inst_t *i = e->insts;
    mrpc__etcd_bye(e, "/v3/kv/deleterange", mrpc__etcd_q_key(i->key));
    if (i->lease[0]) mrpc__etcd_bye(e, "/v3/lease/revoke", mrpc__etcd_q_lease(i->lease));
    inst_report_later(i, MRPC_ECLOSED); /* never registered: ends with the close */
    inst_drop(i);
  }
}
