/* regsrv.c: the embedded registry, a moonrpc service ("Registry") that
 * keeps rpcx's layout in memory: entries base/Service/addr -> metadata,
 * each under its own lease with a TTL. Instances renew their leases with
 * KeepAlive calls (their heartbeats); a lease not renewed within its TTL
 * expires and its entry goes. Watchers are told of every change by server
 * push on the connection they watched from. Payloads are JSON (rpcx
 * serialize type 1), so any rpcx client can use it; the protocol is in
 * moonrpc/registry.h. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "codec/codec.h"
#include "registry/embedded/embedded.h"

#define SERVICE_NAME MRPC__REGSRV_SERVICE
#define ID_LEN 24

/* One registered instance; freed by entry_free when unregistered or expired,
 * or when the registry closes. */
typedef struct entry_s {
  struct entry_s *next;
  char *base, *service, *addr, *meta; /* owned, freed by entry_free */
  char lease[ID_LEN];
  uint64_t ttl_ms, expires;
} entry_t;

/* One watch; freed on Unwatch, by the sweep after its connection closed,
 * or at close. */
typedef struct watcher_s {
  struct watcher_s *next;
  mrpc_conn_t *conn;    /* held (mrpc_conn_hold); released when the watcher goes */
  char *base, *service; /* owned; service "": every service under base */
  char id[ID_LEN];
  int ser; /* the codec it watched with: pushes use it too */
} watcher_t;

struct mrpc_regsrv_s {
  uv_loop_t *loop;
  mrpc_server_t *srv;   /* not owned: the host's server we added "Registry" to */
  mrpc_regsrv_opts_t opts;
  entry_t *entries;     /* owned list */
  size_t nentries, nwatchers;
  watcher_t *watchers;  /* owned list */
  uv_timer_t timer; /* the next lease expiry */
  mrpc_buf_t pack;  /* msgpack output, reused; freed at close */
  uint32_t epoch;   /* tells this process's ids from an earlier one's */
  uint64_t next_id;
  mrpc_reg_cb close_cb;
  void *close_udata;
};

static void new_id(mrpc_regsrv_t *r, char *out) {
  snprintf(out, ID_LEN, "%08x-%llx", (unsigned)r->epoch,
           (unsigned long long)++r->next_id);
}

/* ---- entries and notifications -------------------------------------------- */

static int str_eq(const char *a, const char *b) { return strcmp(a, b) == 0; }

static void entry_free(entry_t *e) {
  free(e->base);
  free(e->service);
  free(e->addr);
  free(e->meta);
  free(e);
}

static entry_t **find_entry(mrpc_regsrv_t *r, const char *base, const char *service,
                            const char *addr) {
  entry_t **p;
  for (p = &r->entries; *p; p = &(*p)->next)
    if (str_eq((*p)->base, base) && str_eq((*p)->service, service) &&
        str_eq((*p)->addr, addr))
      return p;
  return NULL;
}

/* [{service, addr, meta}] of base (and service, unless it is ""). */
static cJSON *instances(mrpc_regsrv_t *r, const char *base, const char *service) {
  cJSON *arr = cJSON_CreateArray(), *o;
  entry_t *e;
  if (!arr) return NULL;
  for (e = r->entries; e; e = e->next) {
    if (!str_eq(e->base, base) || (*service && !str_eq(e->service, service))) continue;
    if (!(o = cJSON_CreateObject())) break;
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "service", e->service);
    cJSON_AddStringToObject(o, "addr", e->addr);
    cJSON_AddStringToObject(o, "meta", e->meta);
  }
  return arr;
}

static void watcher_free(mrpc_regsrv_t *r, watcher_t *w) {
  mrpc_conn_release(w->conn);
  free(w->base);
  free(w->service);
  free(w);
  r->nwatchers--;
}

/* Drops the watchers whose connection has closed. */
static void sweep_watchers(mrpc_regsrv_t *r) {
  watcher_t **p = &r->watchers, *w;
  while ((w = *p)) {
    if (mrpc_conn_is_open(w->conn)) {
      p = &w->next;
      continue;
    }
    *p = w->next;
    watcher_free(r, w);
  }
}

static int push_list(mrpc_regsrv_t *r, watcher_t *w) {
  cJSON *o = cJSON_CreateObject();
  char *text;
  mrpc_frame_t f;
  int rc = MRPC_ENOMEM;
  if (!o) return rc;
  cJSON_AddStringToObject(o, "watch", w->id);
  cJSON_AddItemToObject(o, "instances", instances(r, w->base, w->service));
  memset(&f, 0, sizeof f);
  if ((rc = mrpc__json_encode(o, w->ser, &r->pack, &text, &f.payload, &f.payload_len)) == 0) {
    f.path = SERVICE_NAME;
    f.path_len = sizeof SERVICE_NAME - 1;
    f.method = "Changed";
    f.method_len = 7;
    f.serialize = (uint8_t)(w->ser << 4);
    rc = mrpc_conn_push(w->conn, &f, 1);
    cJSON_free(text);
  }
  cJSON_Delete(o);
  return rc;
}

/* Tells the watchers of base/service (and of all of base) the new list. */
static void notify(mrpc_regsrv_t *r, const char *base, const char *service) {
  watcher_t *w;
  sweep_watchers(r);
  for (w = r->watchers; w; w = w->next)
    if (str_eq(w->base, base) && (!*w->service || str_eq(w->service, service)))
      push_list(r, w);
}

static void on_expiry(uv_timer_t *t);

/* Sets the timer for the earliest lease expiry. */
static void schedule(mrpc_regsrv_t *r) {
  entry_t *e;
  uint64_t first = 0, now = uv_now(r->loop);
  for (e = r->entries; e; e = e->next)
    if (!first || e->expires < first) first = e->expires;
  if (!first) {
    uv_timer_stop(&r->timer);
    return;
  }
  uv_timer_start(&r->timer, on_expiry, first > now ? first - now : 0, 0);
}

static void on_expiry(uv_timer_t *t) {
  mrpc_regsrv_t *r = t->data;
  uint64_t now = uv_now(r->loop);
  entry_t **p = &r->entries, *e;
  while ((e = *p)) {
    if (e->expires > now) {
      p = &e->next;
      continue;
    }
    *p = e->next;
    r->nentries--;
    notify(r, e->base, e->service);
    entry_free(e);
  }
  schedule(r);
}

/* ---- the methods ------------------------------------------------------------ */

/* One request being handled, on the handler's stack. */
typedef struct call_s {
  mrpc_regsrv_t *r;
  mrpc_req_t *req;      /* not owned: answered once before the handler returns */
  int ser;
  cJSON *in, *out;      /* owned, deleted before the handler returns */
  const char *err;
  char errbuf[160];
} call_t;

/* A string field of the request; "" when absent and optional. */
static const char *field(call_t *c, const char *name, int required) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(c->in, name);
  if (cJSON_IsString(v) && v->valuestring) return v->valuestring;
  if (!v && !required) return "";
  if (!c->err) {
    snprintf(c->errbuf, sizeof c->errbuf, "registry: field '%s' must be a string", name);
    c->err = c->errbuf;
  }
  return NULL;
}

static int valid_name(const char *s) { return *s && !strchr(s, '/') && strlen(s) < 512; }

static const char *trimmed_base(call_t *c, char *buf, size_t len) {
  const char *b = field(c, "base", 0);
  size_t n;
  if (!b) return NULL;
  while (*b == '/') b++;
  n = strlen(b);
  while (n && b[n - 1] == '/') n--;
  if (n == 0) b = "rpcx", n = 4;
  if (n >= len) {
    c->err = "registry: base path too long";
    return NULL;
  }
  memcpy(buf, b, n);
  buf[n] = 0;
  return buf;
}

static void m_register(call_t *c) {
  char bb[256];
  const char *base = trimmed_base(c, bb, sizeof bb), *service = field(c, "service", 1),
             *addr = field(c, "addr", 1), *meta = field(c, "meta", 0);
  cJSON *ttl = cJSON_GetObjectItemCaseSensitive(c->in, "ttl");
  mrpc_regsrv_t *r = c->r;
  entry_t **p, *e;
  char *m;
  if (c->err) return;
  if (!valid_name(service) || !valid_name(addr)) {
    c->err = "registry: service and addr must be non-empty, without '/'";
    return;
  }
  if (!cJSON_IsNumber(ttl) || ttl->valuedouble < 1 || ttl->valuedouble > r->opts.max_ttl_s) {
    snprintf(c->errbuf, sizeof c->errbuf, "registry: ttl must be 1..%u seconds",
             r->opts.max_ttl_s);
    c->err = c->errbuf;
    return;
  }
  if (!(m = strdup(meta))) {
    c->err = "registry: out of memory";
    return;
  }
  if ((p = find_entry(r, base, service, addr))) {
    e = *p;
    free(e->meta);
  } else {
    if (r->nentries >= r->opts.max_entries) {
      free(m);
      c->err = "registry: max_entries reached";
      return;
    }
    if (!(e = calloc(1, sizeof *e)) || !(e->base = strdup(base)) ||
        !(e->service = strdup(service)) || !(e->addr = strdup(addr))) {
      if (e) entry_free(e);
      free(m);
      c->err = "registry: out of memory";
      return;
    }
    e->next = r->entries;
    r->entries = e;
    r->nentries++;
  }
  e->meta = m;
  new_id(r, e->lease);
  e->ttl_ms = (uint64_t)(ttl->valuedouble * 1000);
  e->expires = uv_now(r->loop) + e->ttl_ms;
  schedule(r);
  cJSON_AddStringToObject(c->out, "lease", e->lease);
  notify(r, base, service);
}

static void m_update(call_t *c) {
  char bb[256];
  const char *base = trimmed_base(c, bb, sizeof bb), *service = field(c, "service", 1),
             *addr = field(c, "addr", 1), *meta = field(c, "meta", 0);
  entry_t **p;
  char *m;
  if (c->err) return;
  if (!(p = find_entry(c->r, base, service, addr))) {
    c->err = "registry: not registered";
    return;
  }
  if (!(m = strdup(meta))) {
    c->err = "registry: out of memory";
    return;
  }
  free((*p)->meta);
  (*p)->meta = m;
  notify(c->r, base, service);
}

static void m_unregister(call_t *c) {
  char bb[256];
  const char *base = trimmed_base(c, bb, sizeof bb), *service = field(c, "service", 1),
             *addr = field(c, "addr", 1);
  entry_t **p, *e;
  if (c->err) return;
  if (!(p = find_entry(c->r, base, service, addr))) return; /* already gone */
  e = *p;
  *p = e->next;
  c->r->nentries--;
  notify(c->r, base, service);
  entry_free(e);
  schedule(c->r);
}

/* Renews leases; answers which are unknown (expired, or from an earlier
 * registry process) and which of the caller's watches are not bound to
 * this connection, so that the caller registers or watches again. */
static void m_keepalive(call_t *c) {
  cJSON *leases = cJSON_GetObjectItemCaseSensitive(c->in, "leases");
  cJSON *watches = cJSON_GetObjectItemCaseSensitive(c->in, "watches");
  cJSON *expired = cJSON_AddArrayToObject(c->out, "expired");
  cJSON *lost = cJSON_AddArrayToObject(c->out, "lost");
  mrpc_conn_t *conn = mrpc_req_conn(c->req);
  uint64_t now = uv_now(c->r->loop);
  cJSON *it;
  entry_t *e;
  watcher_t *w;
  if ((leases && !cJSON_IsArray(leases)) || (watches && !cJSON_IsArray(watches))) {
    c->err = "registry: leases and watches must be arrays";
    return;
  }
  cJSON_ArrayForEach(it, leases) {
    if (!cJSON_IsString(it)) continue;
    for (e = c->r->entries; e; e = e->next)
      if (str_eq(e->lease, it->valuestring)) break;
    if (e) e->expires = now + e->ttl_ms;
    else cJSON_AddItemToArray(expired, cJSON_CreateString(it->valuestring));
  }
  cJSON_ArrayForEach(it, watches) {
    if (!cJSON_IsString(it)) continue;
    for (w = c->r->watchers; w; w = w->next)
      if (w->conn == conn && str_eq(w->id, it->valuestring)) break;
    if (!w) cJSON_AddItemToArray(lost, cJSON_CreateString(it->valuestring));
  }
  schedule(c->r);
}

static void m_list(call_t *c) {
  char bb[256];
  const char *base = trimmed_base(c, bb, sizeof bb), *service = field(c, "service", 0);
  if (c->err) return;
  cJSON_AddItemToObject(c->out, "instances", instances(c->r, base, service));
}

static void m_watch(call_t *c) {
  char bb[256];
  const char *base = trimmed_base(c, bb, sizeof bb), *service = field(c, "service", 0);
  mrpc_regsrv_t *r = c->r;
  watcher_t *w;
  if (c->err) return;
  sweep_watchers(r);
  if (r->nwatchers >= r->opts.max_watches) {
    c->err = "registry: max_watches reached";
    return;
  }
  if (!(w = calloc(1, sizeof *w)) || !(w->base = strdup(base)) ||
      !(w->service = strdup(service))) {
    if (w) free(w->base);
    free(w);
    c->err = "registry: out of memory";
    return;
  }
  w->conn = mrpc_req_conn(c->req);
  w->ser = c->ser == MRPC_SERIALIZE_MSGPACK ? MRPC_SERIALIZE_MSGPACK : MRPC_SERIALIZE_JSON;
  mrpc_conn_hold(w->conn);
  new_id(r, w->id);
  w->next = r->watchers;
  r->watchers = w;
  r->nwatchers++;
  cJSON_AddStringToObject(c->out, "watch", w->id);
  cJSON_AddItemToObject(c->out, "instances", instances(r, base, service));
}

static void m_unwatch(call_t *c) {
  const char *id = field(c, "watch", 1);
  mrpc_conn_t *conn = mrpc_req_conn(c->req);
  watcher_t **p, *w;
  if (c->err) return;
  for (p = &c->r->watchers; (w = *p); p = &w->next) {
    if (w->conn == conn && str_eq(w->id, id)) {
      *p = w->next;
      watcher_free(c->r, w);
      return;
    }
  }
}

static const struct {
  const char *name;
  void (*fn)(call_t *);
} methods[] = {
  {"Register", m_register}, {"Update", m_update},   {"Unregister", m_unregister},
  {"KeepAlive", m_keepalive}, {"List", m_list},     {"Watch", m_watch},
  {"Unwatch", m_unwatch},
};

static void handle(mrpc_req_t *req, void *udata) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  int ser = mrpc_frame_serialize(f);
  call_t c;
  size_t i, n;
  char *text = NULL;
  const char *p;
  memset(&c, 0, sizeof c);
  c.r = udata;
  c.req = req;
  c.ser = ser;
  for (i = 0; i < sizeof methods / sizeof *methods; i++)
    if (strlen(methods[i].name) == f->method_len &&
        memcmp(methods[i].name, f->method, f->method_len) == 0)
      break;
  if (i == sizeof methods / sizeof *methods) {
    snprintf(c.errbuf, sizeof c.errbuf, "rpcx: can't find method %.*s",
             (int)f->method_len, f->method);
    mrpc_req_error(req, c.errbuf, NULL, 0, NULL, 0);
    return;
  }
  if (ser != MRPC_SERIALIZE_JSON && ser != MRPC_SERIALIZE_NONE && ser != MRPC_SERIALIZE_MSGPACK) {
    mrpc_req_error(req, "registry: payloads are JSON or msgpack", NULL, 0, NULL, 0);
    return;
  }
  c.in = mrpc__json_decode(f->payload, f->payload_len, ser, mrpc_req_limits(req)->max_depth);
  if (!cJSON_IsObject(c.in)) {
    cJSON_Delete(c.in);
    mrpc_req_error(req, ser == MRPC_SERIALIZE_MSGPACK
                            ? "registry: the payload must be a msgpack map"
                            : "registry: the payload must be a JSON object",
                   NULL, 0, NULL, 0);
    return;
  }
  if (!(c.out = cJSON_CreateObject())) c.err = "registry: out of memory";
  else methods[i].fn(&c);
  if (c.err || mrpc__json_encode(c.out, ser, &c.r->pack, &text, &p, &n) < 0)
    mrpc_req_error(req, c.err ? c.err : "registry: out of memory", NULL, 0, NULL, 0);
  else
    mrpc_req_reply(req, p, n, NULL, 0);
  cJSON_free(text);
  cJSON_Delete(c.in);
  cJSON_Delete(c.out);
}

/* ---- the object ------------------------------------------------------------ */

int mrpc_regsrv_new(uv_loop_t *loop, mrpc_server_t *srv, const mrpc_regsrv_opts_t *opts,
                    mrpc_regsrv_t **out) {
  mrpc_regsrv_t *r = calloc(1, sizeof *r);
  size_t i;
  int rc = 0;
  if (!r) return MRPC_ENOMEM;
  r->loop = loop;
  r->srv = srv;
  if (opts) r->opts = *opts;
  if (!r->opts.max_entries) r->opts.max_entries = 100000;
  if (!r->opts.max_watches) r->opts.max_watches = 10000;
  if (!r->opts.max_ttl_s) r->opts.max_ttl_s = 86400;
  r->epoch = (uint32_t)uv_hrtime() ^ ((uint32_t)getpid() << 16);
  for (i = 0; i < sizeof methods / sizeof *methods && rc == 0; i++)
    rc = mrpc_server_register(srv, SERVICE_NAME, methods[i].name, handle, r);
  if (rc < 0) {
    mrpc_server_unregister(srv, SERVICE_NAME);
    free(r);
    return rc;
  }
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  *out = r;
  return 0;
}

size_t mrpc_regsrv_count(const mrpc_regsrv_t *r) { return r->nentries; }
size_t mrpc_regsrv_watchers(const mrpc_regsrv_t *r) { return r->nwatchers; }

static void timer_closed(uv_handle_t *h) {
  mrpc_regsrv_t *r = h->data;
  mrpc_reg_cb cb = r->close_cb;
  void *ud = r->close_udata;
  free(r);
  if (cb) cb(0, ud);
}

void mrpc_regsrv_close(mrpc_regsrv_t *r, mrpc_reg_cb cb, void *udata) {
  entry_t *e;
  watcher_t *w;
  mrpc_server_unregister(r->srv, SERVICE_NAME);
  while ((w = r->watchers)) {
    r->watchers = w->next;
    watcher_free(r, w);
  }
  while ((e = r->entries)) {
    r->entries = e->next;
    entry_free(e);
  }
  mrpc_buf_free(&r->pack);
  r->close_cb = cb;
  r->close_udata = udata;
  uv_close((uv_handle_t *)&r->timer, timer_closed);
}
