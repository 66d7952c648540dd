/* client.c: the moonrpc:// backend, the client of the embedded
 * registry (regsrv.c, protocol in moonrpc/registry.h) over one rpcx
 * connection.
 *
 * One timer drives everything. Each tick (a third of the shortest TTL, at
 * most a second) sends one KeepAlive naming every lease and watch held; its
 * answer says which leases the registry no longer knows (expired, or a
 * registry restarted) and which watches are not bound to this connection
 * (it was re-established), and those are registered or watched again at
 * once. So a registry that goes away and comes back gets every instance
 * and watch back within a tick. While calls fail the tick backs off from
 * 200 ms to 5 s: no busy loop. Watches receive lists by server push
 * (Registry.Changed). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "registry/embedded/embedded.h"

#define CALL_TIMEOUT_MS 3000
#define TICK_MAX_MS 1000
#define TICK_MIN_MS 100
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define CLOSE_GRACE_MS 1000
#define ID_MAX 32

typedef struct mreg_s mreg_t;

/* One registered instance; in mreg_t's list from register until unregister
 * (or close), freed by inst_free. */
typedef struct minst_s {
  struct minst_s *next;
  char *service, *addr, *meta; /* owned, freed with the instance */
  unsigned ttl;
  char lease[ID_MAX]; /* "" while not registered */
  int busy;           /* a Register in flight */
  int dead;           /* unregistered while busy: freed when it ends */
  mrpc_reg_cb cb;     /* the first report; NULL once given */
  void *udata;
} minst_t;

/* One watch; in mreg_t's list until unwatch or close, which free it (after
 * an Unwatch in flight ends, when busy). */
typedef struct mwatch_s {
  mrpc_watch_t head;
  struct mwatch_s *next;
  mreg_t *m;           /* not owned: the backend outlives its watches */
  char *service;       /* owned, freed with the watch */
  mrpc_reg_list_cb cb;
  void *udata;
  char id[ID_MAX]; /* "" while not watching */
  int busy, dead;
} mwatch_t;

/* The backend's state, freed by the close path once the client and the
 * timer have closed (maybe_finish_close). */
struct mreg_s {
  mrpc_registry_t *r;  /* not owned: registry.c frees it after our close */
  mrpc_client_t *cli;  /* owned: closed by the close path */
  minst_t *insts;      /* owned list */
  mwatch_t *watches;   /* owned list */
  uv_timer_t tick;
  uint64_t backoff; /* 0: healthy */
  int keepalive_busy;
  int closing, client_closed, timer_closed;
  size_t unregs; /* close: Unregister calls in flight */
  mrpc_reg_cb close_cb;
  void *close_udata;
};

enum { OP_REGISTER, OP_UPDATE, OP_UNREGISTER, OP_KEEPALIVE, OP_LIST, OP_WATCH, OP_UNWATCH, OP_CLOSE_UNREG };

/* One call to the registry in flight; freed by on_reply (or by send_call
 * when the call could not start). */
typedef struct mop_s {
  mreg_t *m;
  int kind;
  minst_t *inst;        /* not owned: the instance it acts for, if any */
  mwatch_t *w;          /* not owned: the watch it acts for, if any */
  mrpc_reg_cb cb;
  mrpc_reg_list_cb lcb;
  void *udata;
  char *service;        /* owned (list calls), freed with the op */
} mop_t;

static void schedule(mreg_t *m, uint64_t ms);
static void maybe_finish_close(mreg_t *m);

/* ---- calls ---------------------------------------------------------------- */

static void on_reply(int status, const mrpc_frame_t *f, void *udata);

/* Sends `method` with `body` (consumed). On failure frees op and returns
 * the error; the op's callbacks are not called. */
static int send_call(mreg_t *m, const char *method, cJSON *body, mop_t *op) {
  mrpc_call_args_t a;
  char *text;
  int rc;
  if (!body) {
    free(op);
    return MRPC_ENOMEM;
  }
  text = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  if (!text) {
    free(op);
    return MRPC_ENOMEM;
  }
  memset(&a, 0, sizeof a);
  a.service = MRPC__REGSRV_SERVICE;
  a.method = method;
  a.payload = text;
  a.payload_len = strlen(text);
  a.serialize = MRPC_SERIALIZE_JSON;
  a.timeout_ms = CALL_TIMEOUT_MS;
  rc = mrpc_client_call(m->cli, &a, on_reply, op, NULL);
  cJSON_free(text);
  if (rc < 0) free(op);
  return rc;
}

static mop_t *new_op(mreg_t *m, int kind) {
  mop_t *op = calloc(1, sizeof *op);
  if (op) {
    op->m = m;
    op->kind = kind;
  }
  return op;
}

static cJSON *key_body(mreg_t *m, const char *service, const char *addr) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddStringToObject(o, "base", m->r->base);
  cJSON_AddStringToObject(o, "service", service);
  if (addr) cJSON_AddStringToObject(o, "addr", addr);
  return o;
}

static void inst_free(minst_t *i) {
  free(i->service);
  free(i->addr);
  free(i->meta);
  free(i);
}

static void watch_free(mwatch_t *w) {
  free(w->service);
  free(w);
}

static void send_register(mreg_t *m, minst_t *i) {
  mop_t *op = new_op(m, OP_REGISTER);
  cJSON *b = key_body(m, i->service, i->addr);
  if (!op) {
    cJSON_Delete(b);
    return;
  }
  if (b) {
    cJSON_AddStringToObject(b, "meta", i->meta);
    cJSON_AddNumberToObject(b, "ttl", i->ttl);
  }
  op->inst = i;
  if (send_call(m, "Register", b, op) == 0) i->busy = 1;
}

static void send_watch(mreg_t *m, mwatch_t *w) {
  mop_t *op = new_op(m, OP_WATCH);
  cJSON *b = key_body(m, w->service, NULL);
  if (!op) {
    cJSON_Delete(b);
    return;
  }
  op->w = w;
  if (send_call(m, "Watch", b, op) == 0) w->busy = 1;
}

static void send_keepalive(mreg_t *m) {
  mop_t *op;
  cJSON *b = cJSON_CreateObject(), *leases, *watches;
  minst_t *i;
  mwatch_t *w;
  if (!b) return;
  leases = cJSON_AddArrayToObject(b, "leases");
  watches = cJSON_AddArrayToObject(b, "watches");
  for (i = m->insts; i; i = i->next)
    if (i->lease[0]) cJSON_AddItemToArray(leases, cJSON_CreateString(i->lease));
  for (w = m->watches; w; w = w->next)
    if (w->id[0]) cJSON_AddItemToArray(watches, cJSON_CreateString(w->id));
  if (!(op = new_op(m, OP_KEEPALIVE))) {
    cJSON_Delete(b);
    return;
  }
  if (send_call(m, "KeepAlive", b, op) == 0) m->keepalive_busy = 1;
}

/* ---- the tick ---------------------------------------------------------------- */

static uint64_t tick_ms(mreg_t *m) {
  uint64_t t = TICK_MAX_MS;
  minst_t *i;
  for (i = m->insts; i; i = i->next)
    if ((uint64_t)i->ttl * 1000 / 3 < t) t = (uint64_t)i->ttl * 1000 / 3;
  return t < TICK_MIN_MS ? TICK_MIN_MS : t;
}

static void on_tick(uv_timer_t *t) {
  mreg_t *m = t->data;
  minst_t *i;
  mwatch_t *w;
  if (m->closing) return;
  if (!m->insts && !m->watches) return; /* idle: the next operation wakes it */
  for (i = m->insts; i; i = i->next)
    if (!i->lease[0] && !i->busy) send_register(m, i);
  for (w = m->watches; w; w = w->next)
    if (!w->id[0] && !w->busy) send_watch(m, w);
  if (!m->keepalive_busy) send_keepalive(m);
  schedule(m, m->backoff ? m->backoff : tick_ms(m));
}

static void schedule(mreg_t *m, uint64_t ms) {
  if (!m->closing) uv_timer_start(&m->tick, on_tick, ms, 0);
}

/* A transport failure: back off. Success: back to the normal tick. */
static void health(mreg_t *m, int ok) {
  if (ok) {
    if (m->backoff) {
      m->backoff = 0;
      schedule(m, 0); /* catch up at once */
    }
    return;
  }
  m->backoff = m->backoff ? m->backoff * 2 : BACKOFF_MIN_MS;
  if (m->backoff > BACKOFF_MAX_MS) m->backoff = BACKOFF_MAX_MS;
  if (uv_timer_get_due_in(&m->tick) > m->backoff || !uv_is_active((uv_handle_t *)&m->tick))
    schedule(m, m->backoff);
}

/* ---- replies ------------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b) {
  const mrpc_reg_entry_t *x = a, *y = b;
  int c = strcmp(x->service, y->service);
  return c ? c : strcmp(x->addr, y->addr);
}

/* Calls `cb` with the "instances" array of `o`. */
static void deliver(cJSON *o, mrpc_reg_list_cb cb, void *udata) {
  cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "instances"), *it;
  mrpc_reg_entry_t *l = NULL;
  size_t n = 0, cap = (size_t)cJSON_GetArraySize(arr);
  if (!cJSON_IsArray(arr)) {
    cb(MRPC_EPROTO, NULL, 0, udata);
    return;
  }
  if (cap && !(l = calloc(cap, sizeof *l))) {
    cb(MRPC_ENOMEM, NULL, 0, udata);
    return;
  }
  cJSON_ArrayForEach(it, arr) {
    cJSON *s = cJSON_GetObjectItemCaseSensitive(it, "service");
    cJSON *a = cJSON_GetObjectItemCaseSensitive(it, "addr");
    cJSON *mt = cJSON_GetObjectItemCaseSensitive(it, "meta");
    if (!cJSON_IsString(s) || !cJSON_IsString(a) || n == cap) continue;
    l[n].service = s->valuestring;
    l[n].addr = a->valuestring;
    l[n].meta = cJSON_IsString(mt) ? mt->valuestring : "";
    n++;
  }
  if (n > 1) qsort(l, n, sizeof *l, cmp_entry);
  cb(0, l, n, udata);
  free(l);
}

static void first_report(minst_t *i, int status) {
  mrpc_reg_cb cb = i->cb;
  if (!cb) return;
  i->cb = NULL;
  cb(status, i->udata);
}

static void unlink_inst(mreg_t *m, minst_t *i) {
  minst_t **p;
  for (p = &m->insts; *p; p = &(*p)->next)
    if (*p == i) {
      *p = i->next;
      return;
    }
}

static void keepalive_done(mreg_t *m, cJSON *o) {
  cJSON *it;
  minst_t *i;
  mwatch_t *w;
  cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "expired")) {
    if (!cJSON_IsString(it)) continue;
    for (i = m->insts; i; i = i->next)
      if (strcmp(i->lease, it->valuestring) == 0) {
        i->lease[0] = 0;
        if (!i->busy) send_register(m, i);
      }
  }
  cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "lost")) {
    if (!cJSON_IsString(it)) continue;
    for (w = m->watches; w; w = w->next)
      if (strcmp(w->id, it->valuestring) == 0) {
        w->id[0] = 0;
        if (!w->busy) send_watch(m, w);
      }
  }
}

/* Errors of a reply: a transport status, or the remote error text. */
static int reply_status(int status, const mrpc_frame_t *f, cJSON **out) {
  *out = NULL;
  if (status < 0) return status;
  if (mrpc_frame_status(f) == MRPC_STATUS_ERROR) {
    size_t n;
    const char *e = mrpc_frame_error(f, &n);
    if (e && n >= 17 && memcmp(e, "rpcx: can't find ", 17) == 0) return MRPC_ENOSERVICE;
    return MRPC_EREMOTE;
  }
  *out = cJSON_ParseWithLength(f->payload, f->payload_len);
  return cJSON_IsObject(*out) ? 0 : MRPC_EPROTO;
}

static void on_reply(int status, const mrpc_frame_t *f, void *udata) {
  mop_t *op = udata;
  mreg_t *m = op->m;
  cJSON *o = NULL, *v;
  int rc = reply_status(status, f, &o);
  if (rc != MRPC_EREMOTE && rc != MRPC_ENOSERVICE) health(m, rc == 0);
  switch (op->kind) {
  case OP_REGISTER: {
    minst_t *i = op->inst;
    i->busy = 0;
    if (i->dead) {
      inst_free(i);
      break;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "lease");
    if (rc == 0 && cJSON_IsString(v) && strlen(v->valuestring) < ID_MAX)
      strcpy(i->lease, v->valuestring);
    else if (rc == 0)
      rc = MRPC_EPROTO;
    first_report(i, m->closing && rc < 0 ? MRPC_ECLOSED : rc);
    break;
  }
  case OP_WATCH: {
    mwatch_t *w = op->w;
    w->busy = 0;
    if (w->dead) {
      watch_free(w);
      break;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "watch");
    if (rc == 0 && cJSON_IsString(v) && strlen(v->valuestring) < ID_MAX) {
      strcpy(w->id, v->valuestring);
      deliver(o, w->cb, w->udata);
    }
    break;
  }
  case OP_KEEPALIVE:
    m->keepalive_busy = 0;
    if (rc == 0 && !m->closing) keepalive_done(m, o);
    break;
  case OP_LIST:
    if (rc == 0) deliver(o, op->lcb, op->udata);
    else op->lcb(rc, NULL, 0, op->udata);
    free(op->service);
    break;
  case OP_UPDATE:
  case OP_UNREGISTER:
    if (op->cb) op->cb(rc, op->udata);
    break;
  case OP_CLOSE_UNREG:
    m->unregs--;
    break;
  case OP_UNWATCH:
    break;
  }
  cJSON_Delete(o);
  free(op);
  if (m->closing) maybe_finish_close(m);
}

static void on_push(mrpc_client_t *c, const mrpc_frame_t *f, void *udata) {
  mreg_t *m = udata;
  cJSON *o, *id;
  mwatch_t *w;
  (void)c;
  if (m->closing || f->method_len != 7 || memcmp(f->method, "Changed", 7) != 0) return;
  if (!(o = cJSON_ParseWithLength(f->payload, f->payload_len))) return;
  id = cJSON_GetObjectItemCaseSensitive(o, "watch");
  if (cJSON_IsString(id))
    for (w = m->watches; w; w = w->next)
      if (w->id[0] && strcmp(w->id, id->valuestring) == 0) {
        deliver(o, w->cb, w->udata);
        break;
      }
  cJSON_Delete(o);
}

/* ---- the operations -------------------------------------------------------------- */

static int m_open(mrpc_registry_t *r, const char *host, int port) {
  mreg_t *m = calloc(1, sizeof *m);
  mrpc_client_opts_t o;
  char addr[300];
  int rc;
  if (!m) return MRPC_ENOMEM;
  memset(&o, 0, sizeof o);
  o.connect_timeout_ms = 2000;
  o.on_push = on_push;
  o.push_udata = m;
  snprintf(addr, sizeof addr, strchr(host, ':') ? "tcp@[%s]:%d" : "tcp@%s:%d", host, port);
  if ((rc = mrpc_client_new(r->loop, addr, &o, &m->cli)) < 0) {
    free(m);
    return rc;
  }
  uv_timer_init(r->loop, &m->tick);
  m->tick.data = m;
  m->r = r;
  r->backend = m;
  return 0;
}

static minst_t *find_inst(mreg_t *m, const char *service, const char *addr) {
  minst_t *i;
  for (i = m->insts; i; i = i->next)
    if (strcmp(i->service, service) == 0 && strcmp(i->addr, addr) == 0) return i;
  return NULL;
}

static int m_reg(mrpc_registry_t *r, const char *service, const char *addr, const char *meta,
                 unsigned ttl_s, mrpc_reg_cb cb, void *udata) {
  mreg_t *m = r->backend;
  minst_t *i;
  if (find_inst(m, service, addr)) return MRPC_EBUSY;
  if (!(i = calloc(1, sizeof *i)) || !(i->service = strdup(service)) ||
      !(i->addr = strdup(addr)) || !(i->meta = strdup(meta))) {
    if (i) inst_free(i);
    return MRPC_ENOMEM;
  }
  i->ttl = ttl_s;
  i->cb = cb;
  i->udata = udata;
  i->next = m->insts;
  m->insts = i;
  send_register(m, i);
  if (!i->busy) { /* could not even send: the tick retries */
    unlink_inst(m, i);
    inst_free(i);
    return MRPC_ENOMEM;
  }
  schedule(m, m->backoff ? m->backoff : tick_ms(m));
  return 0;
}

static int m_update(mrpc_registry_t *r, const char *service, const char *addr,
                    const char *meta, mrpc_reg_cb cb, void *udata) {
  mreg_t *m = r->backend;
  minst_t *i = find_inst(m, service, addr);
  mop_t *op;
  cJSON *b;
  char *nm;
  if (!i) return MRPC_EINVAL; /* not registered through this registry */
  op = new_op(m, OP_UPDATE);
  b = key_body(m, service, addr);
  if (!op || !(nm = strdup(meta))) {
    free(op);
    cJSON_Delete(b);
    return MRPC_ENOMEM;
  }
  free(i->meta); /* re-registrations carry the new metadata */
  i->meta = nm;
  if (b) cJSON_AddStringToObject(b, "meta", meta);
  op->cb = cb;
  op->udata = udata;
  return send_call(m, "Update", b, op);
}

static int m_unreg(mrpc_registry_t *r, const char *service, const char *addr,
                   mrpc_reg_cb cb, void *udata) {
  mreg_t *m = r->backend;
  minst_t *i = find_inst(m, service, addr);
  mop_t *op = new_op(m, OP_UNREGISTER);
  int rc;
  if (!op) return MRPC_ENOMEM;
  op->cb = cb;
  op->udata = udata;
  if ((rc = send_call(m, "Unregister", key_body(m, service, addr), op)) < 0) return rc;
  if (i) {
    unlink_inst(m, i);
    first_report(i, MRPC_ECANCELED);
    if (i->busy) i->dead = 1;
    else inst_free(i);
  }
  return 0;
}

static int m_list(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb, void *udata) {
  mreg_t *m = r->backend;
  mop_t *op = new_op(m, OP_LIST);
  if (!op) return MRPC_ENOMEM;
  op->lcb = cb;
  op->udata = udata;
  return send_call(m, "List", key_body(m, service, NULL), op);
}

static int m_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb, void *udata,
                   mrpc_watch_t **out) {
  mreg_t *m = r->backend;
  mwatch_t *w = calloc(1, sizeof *w);
  if (!w || !(w->service = strdup(service))) {
    free(w);
    return MRPC_ENOMEM;
  }
  w->head.reg = r;
  w->m = m;
  w->cb = cb;
  w->udata = udata;
  w->next = m->watches;
  m->watches = w;
  send_watch(m, w); /* if it cannot be sent, the tick retries */
  schedule(m, w->busy ? (m->backoff ? m->backoff : tick_ms(m)) : BACKOFF_MIN_MS);
  *out = &w->head;
  return 0;
}

static void m_unwatch(mrpc_watch_t *hw) {
  mwatch_t *w = (mwatch_t *)hw, **p;
  mreg_t *m = w->m;
  for (p = &m->watches; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  if (w->id[0]) {
    mop_t *op = new_op(m, OP_UNWATCH);
    cJSON *b = cJSON_CreateObject();
    if (b) cJSON_AddStringToObject(b, "watch", w->id);
    if (op) send_call(m, "Unwatch", b, op);
    else cJSON_Delete(b);
  }
  if (w->busy) w->dead = 1;
  else watch_free(w);
}

/* ---- close -------------------------------------------------------------------------- */

static void finish(mreg_t *m) {
  mrpc_reg_cb cb = m->close_cb;
  void *ud = m->close_udata;
  free(m);
  if (cb) cb(0, ud);
}

static void on_timer_closed(uv_handle_t *h) {
  mreg_t *m = h->data;
  m->timer_closed = 1;
  if (m->client_closed) finish(m);
}

static void on_client_closed(mrpc_client_t *c, void *udata) {
  mreg_t *m = udata;
  (void)c;
  m->client_closed = 1;
  if (m->timer_closed) finish(m);
}

/* Ends everything: first reports ECLOSED, the client closed (its pending
 * calls end with ECLOSED, and on_reply frees what they held), the timer
 * closed; finish() runs once both are. */
static void close_now(mreg_t *m) {
  mrpc_client_t *c = m->cli;
  minst_t *i;
  mwatch_t *w;
  if (!c) return;
  m->cli = NULL;
  while ((i = m->insts)) {
    m->insts = i->next;
    first_report(i, MRPC_ECLOSED);
    if (i->busy) i->dead = 1;
    else inst_free(i);
  }
  while ((w = m->watches)) {
    m->watches = w->next;
    if (w->busy) w->dead = 1;
    else watch_free(w);
  }
  uv_timer_stop(&m->tick);
  uv_close((uv_handle_t *)&m->tick, on_timer_closed);
  mrpc_client_close(c, on_client_closed, m);
}

static void on_grace(uv_timer_t *t) { close_now(t->data); }

static void maybe_finish_close(mreg_t *m) {
  if (m->unregs == 0) close_now(m);
}

/* Unregisters what it registered (best effort, for CLOSE_GRACE_MS), then
 * closes. */
static void m_close(mrpc_registry_t *r, mrpc_reg_cb cb, void *udata) {
  mreg_t *m = r->backend;
  minst_t *i;
  m->closing = 1;
  m->close_cb = cb;
  m->close_udata = udata;
  uv_timer_stop(&m->tick);
  for (i = m->insts; i; i = i->next) {
    mop_t *op;
    if (!i->lease[0] || !(op = new_op(m, OP_CLOSE_UNREG))) continue;
    if (send_call(m, "Unregister", key_body(m, i->service, i->addr), op) == 0) m->unregs++;
  }
  uv_timer_start(&m->tick, on_grace, m->unregs ? CLOSE_GRACE_MS : 0, 0);
}

const mrpc_registry_ops_t mrpc__moonrpc_ops = {
  "moonrpc", m_open, m_reg, m_update, m_unreg, m_list, m_watch, m_unwatch, m_close,
};
