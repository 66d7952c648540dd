/* server.c: the rpcx server: listeners, connections, dispatch to handlers,
 * heartbeat echo, auth, deferred replies and graceful shutdown.
 *
 * Lifetimes. A connection is freed when its handle is closed and no request
 * from it is still held by a handler (conn->refs). The server is freed when
 * it was closed, every handle it owns is closed and every request released
 * (s->live). Requests come from a free list and are never returned to
 * malloc before the server itself goes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "base/base.h"
#include "transport/transport.h"

#include "server/server.h"


/* ---- services ----------------------------------------------------------- */

static service_t *find_service(mrpc_server_t *s, const char *name, size_t n) {
  service_t *v;
  for (v = s->services; v; v = v->next)
    if (strncmp(v->name, name, n) == 0 && v->name[n] == 0) return v;
  return NULL;
}

static method_t *find_method(service_t *v, const char *name, size_t n) {
  method_t *m;
  for (m = v->methods; m; m = m->next)
    if (strncmp(m->name, name, n) == 0 && m->name[n] == 0) return m;
  return NULL;
}

int mrpc_server_register(mrpc_server_t *s, const char *service,
                         const char *method, mrpc_handler_fn fn, void *udata) {
  service_t *v;
  method_t *m;
  if (!s || !service || !method || !fn || !*service || !*method)
    return MRPC_EINVAL;
  v = find_service(s, service, strlen(service));
  if (!v) {
    v = calloc(1, sizeof *v);
    if (!v || !(v->name = mrpc__strndup(service, strlen(service)))) {
      free(v);
      return MRPC_ENOMEM;
    }
    v->next = s->services;
    s->services = v;
  }
  m = find_method(v, method, strlen(method));
  if (!m) {
    m = calloc(1, sizeof *m);
    if (!m || !(m->name = mrpc__strndup(method, strlen(method)))) {
      free(m);
      return MRPC_ENOMEM;
    }
    m->next = v->methods;
    v->methods = m;
  }
  m->fn = fn;
  m->udata = udata;
  return 0;
}

int mrpc_server_set_metadata(mrpc_server_t *s, const char *service, const char *meta) {
  service_t *v = service ? find_service(s, service, strlen(service)) : NULL;
  char *m;
  if (!v) return MRPC_ENOSERVICE;
  if (!(m = mrpc__strndup(meta ? meta : "", meta ? strlen(meta) : 0))) return MRPC_ENOMEM;
  free(v->meta);
  v->meta = m;
  return 0;
}

void mrpc_server_set_auth(mrpc_server_t *s, mrpc_auth_fn fn, void *udata) {
  s->opts.auth = fn;
  s->opts.auth_udata = udata;
}

static void free_service(service_t *v) {
  method_t *m, *mn;
  for (m = v->methods; m; m = mn) {
    mn = m->next;
    free(m->name);
    free(m);
  }
  free(v->name);
  free(v->meta);
  free(v);
}

int mrpc_server_unregister(mrpc_server_t *s, const char *service) {
  service_t **pp;
  for (pp = &s->services; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, service) == 0) {
      service_t *v = *pp;
      *pp = v->next;
      free_service(v);
      return 0;
    }
  }
  return MRPC_ENOSERVICE;
}

/* ---- requests -------------------------------------------------------------- */

static mrpc_req_t *req_get(mrpc_server_t *s, conn_t *c, const mrpc_frame_t *f) {
  mrpc_req_t *r = s->free_reqs;
  if (r) s->free_reqs = r->next_free;
  else if (!(r = calloc(1, sizeof *r))) return NULL;
  r->srv = s;
  r->conn = c;
  r->frame = *f;
  r->timeout = r->deadline = 0;
  r->data = NULL;
  c->refs++;
  s->inflight++;
  s->live++;
  return r;
}

static void req_release(mrpc_req_t *r) {
  mrpc_server_t *s = r->srv;
  conn_t *c = r->conn;
  r->gen++;
  r->conn = NULL;
  r->store.len = 0;
  r->next_free = s->free_reqs;
  s->free_reqs = r;
  s->inflight--;
  mrpc__conn_unref(c);
  mrpc__server_shutdown_check(s);
  mrpc__server_unref(s);
}

/* Copies the frame out of the decoder's buffer so that the request outlives
 * the read that delivered it. */
static int req_detach(mrpc_req_t *r) {
  mrpc_frame_t *f = &r->frame;
  size_t i, need = f->path_len + f->method_len + f->payload_len;
  char *p;
  for (i = 0; i < f->meta_count; i++) need += f->meta[i].key_len + f->meta[i].val_len;
  r->store.len = 0;
  if (mrpc_buf_reserve(&r->store, need + 1) < 0) return MRPC_ENOMEM;
  if (f->meta_count > r->meta_cap) {
    mrpc_meta_t *m = realloc(r->meta, f->meta_count * sizeof *m);
    if (!m) return MRPC_ENOMEM;
    r->meta = m;
    r->meta_cap = f->meta_count;
  }
  p = r->store.data;
#define MOVE(ptr, n) do { if (n) memcpy(p, ptr, n); ptr = p; p += n; } while (0)
  MOVE(f->path, f->path_len);
  MOVE(f->method, f->method_len);
  for (i = 0; i < f->meta_count; i++) {
    r->meta[i] = f->meta[i];
    MOVE(r->meta[i].key, r->meta[i].key_len);
    MOVE(r->meta[i].val, r->meta[i].val_len);
  }
  MOVE(f->payload, f->payload_len);
#undef MOVE
  f->meta = r->meta;
  f->wire_payload = f->payload; /* the compressed form is not kept */
  f->wire_payload_len = f->payload_len;
  r->store.len = need;
  return 0;
}

const mrpc_frame_t *mrpc_req_frame(const mrpc_req_t *r) { return &r->frame; }
int mrpc_req_serialize(const mrpc_req_t *r) { return r->frame.serialize >> 4; }
uint64_t mrpc_req_timeout(const mrpc_req_t *r) { return r->timeout; }
uint64_t mrpc_req_deadline(const mrpc_req_t *r) { return r->deadline; }
const mrpc_limits_t *mrpc_req_limits(const mrpc_req_t *r) { return &r->srv->opts.limits; }
int mrpc_req_oneway(const mrpc_req_t *r) { return mrpc_frame_is_oneway(&r->frame); }
void mrpc_req_set_data(mrpc_req_t *r, void *d) { r->data = d; }
void *mrpc_req_get_data(const mrpc_req_t *r) { return r->data; }

int mrpc_req_remote(const mrpc_req_t *r, char *buf, size_t len) {
  if (!r->conn || r->conn->closed) return MRPC_ECONNLOST;
  return mrpc__conn_peer(r->conn, buf, len);
}

/* Encodes the answer to `r` into its connection's output. The header is the
 * request's, with the response bit set and the compress bits cleared, as
 * rpcx does; an error sets status 1 and adds __rpcx_error__. */
static int answer(mrpc_req_t *r, const char *err, size_t err_len,
                  const char *payload, size_t len, const mrpc_meta_t *meta,
                  size_t nmeta) {
  conn_t *c = r->conn;
  const mrpc_frame_t *q = &r->frame;
  mrpc_meta_t small[SMALL_META], *all = small;
  mrpc_frame_t f;
  int rc, gz = mrpc_frame_compress(q) == MRPC_COMPRESS_GZIP;
  if (!mrpc__conn_writable(c)) return MRPC_ECONNLOST;
  memset(&f, 0, sizeof f);
  f.version = q->version;
  f.flags = (uint8_t)((q->flags | MRPC_FLAG_RESPONSE) & ~MRPC_FLAG_COMPRESS);
  if (err) f.flags = (uint8_t)((f.flags & ~MRPC_FLAG_STATUS) | MRPC_STATUS_ERROR);
  f.serialize = q->serialize;
  f.seq = q->seq;
  f.path = q->path;
  f.path_len = q->path_len;
  f.method = q->method;
  f.method_len = q->method_len;
  f.payload = payload;
  f.payload_len = payload ? len : 0;
  if (err) {
    if (nmeta + 1 > SMALL_META && !(all = malloc((nmeta + 1) * sizeof *all)))
      return MRPC_ENOMEM;
    if (nmeta) memcpy(all, meta, nmeta * sizeof *all);
    all[nmeta].key = MRPC_META_ERROR;
    all[nmeta].key_len = sizeof MRPC_META_ERROR - 1;
    all[nmeta].val = err;
    all[nmeta].val_len = err_len;
    f.meta = all;
    f.meta_count = nmeta + 1;
  } else {
    f.meta = meta;
    f.meta_count = nmeta;
  }
  rc = mrpc_frame_encode_auto(mrpc__stream_out(&c->st), &f, gz, &r->srv->scratch);
  if (all != small) free(all);
  if (rc == 0) mrpc__stream_flush(&c->st);
  return rc;
}

int mrpc_req_reply(mrpc_req_t *r, const char *payload, size_t len,
                   const mrpc_meta_t *meta, size_t nmeta) {
  int rc = 0;
  if (!mrpc_frame_is_oneway(&r->frame))
    rc = answer(r, NULL, 0, payload, len, meta, nmeta);
  req_release(r);
  return rc;
}

int mrpc_req_error(mrpc_req_t *r, const char *msg, const char *payload,
                   size_t len, const mrpc_meta_t *meta, size_t nmeta) {
  int rc = 0;
  if (!msg) msg = "error";
  if (mrpc_frame_is_oneway(&r->frame)) {
    mrpc__log(r->srv->opts.log, r->srv->opts.log_udata, 1,
              "oneway call %.*s.%.*s failed: %s", (int)r->frame.path_len,
              r->frame.path, (int)r->frame.method_len, r->frame.method, msg);
  } else {
    rc = answer(r, msg, strlen(msg), payload, len, meta, nmeta);
  }
  req_release(r);
  return rc;
}

void mrpc_req_drop(mrpc_req_t *r) { req_release(r); }

/* ---- dispatch --------------------------------------------------------------- */

static void echo_heartbeat(conn_t *c, const mrpc_frame_t *f) {
  mrpc_frame_t e = *f;
  e.flags |= MRPC_FLAG_RESPONSE;
  if (mrpc_frame_encode(mrpc__stream_out(&c->st), &e) == 0)
    mrpc__stream_flush(&c->st);
}

static uint64_t parse_timeout(const mrpc_frame_t *f) {
  const mrpc_meta_t *m = mrpc_frame_meta_get(f, MRPC_META_TIMEOUT);
  uint64_t v = 0;
  size_t i;
  if (!m || m->val_len == 0 || m->val_len > 12) return 0;
  for (i = 0; i < m->val_len; i++) {
    if (m->val[i] < '0' || m->val[i] > '9') return 0;
    v = v * 10 + (uint64_t)(m->val[i] - '0');
  }
  return v;
}

static int check_auth(mrpc_server_t *s, conn_t *c, mrpc_req_t *r) {
  const mrpc_meta_t *m = mrpc_frame_meta_get(&r->frame, MRPC_META_AUTH);
  char err[256] = "";
  if (s->opts.auth(r, m ? m->val : NULL, m ? m->val_len : 0,
                   s->opts.auth_udata, err, sizeof err) == 0)
    return 0;
  mrpc_req_error(r, err[0] ? err : "auth failed", NULL, 0, NULL, 0);
  mrpc__stream_close_after_flush(&c->st);
  return -1;
}

static int run_handler(mrpc_server_t *s, conn_t *c, mrpc_req_t *r,
                       mrpc_handler_fn fn, void *udata);

static int on_frame(mrpc__stream_t *st, mrpc_frame_t *f) {
  conn_t *c = st->owner;
  mrpc_server_t *s = c->srv;
  service_t *v;
  method_t *m;
  mrpc_req_t *r;
  char msg[300];
  int ser;

  if (mrpc_frame_is_heartbeat(f)) {
    echo_heartbeat(c, f);
    return 0;
  }
  if (!(r = req_get(s, c, f))) return 1;
  if (s->shutting) {
    mrpc_req_error(r, "server is shutting down", NULL, 0, NULL, 0);
    return 0;
  }
  if (s->opts.auth && check_auth(s, c, r) != 0) return 1;
  if (s->closing || c->st.closing) { /* the auth hook closed us */
    mrpc_req_drop(r);
    return 1;
  }
  v = find_service(s, f->path, f->path_len);
  if (!v && s->fallback) {
    r->timeout = parse_timeout(f);
    if (r->timeout) r->deadline = uv_now(s->loop) + r->timeout;
    return run_handler(s, c, r, s->fallback, s->fallback_udata);
  }
  if (!v) {
    snprintf(msg, sizeof msg, "rpcx: can't find service %.*s",
             (int)f->path_len, f->path);
    mrpc_req_error(r, msg, NULL, 0, NULL, 0);
    return 0;
  }
  m = find_method(v, f->method, f->method_len);
  if (!m) {
    snprintf(msg, sizeof msg, "rpcx: can't find method %.*s",
             (int)f->method_len, f->method);
    mrpc_req_error(r, msg, NULL, 0, NULL, 0);
    return 0;
  }
  ser = mrpc_frame_serialize(f);
  if (ser != MRPC_SERIALIZE_NONE && ser != MRPC_SERIALIZE_JSON &&
      ser != MRPC_SERIALIZE_MSGPACK) {
    snprintf(msg, sizeof msg, "can not find codec for %d", ser);
    mrpc_req_error(r, msg, NULL, 0, NULL, 0);
    return 0;
  }
  r->timeout = parse_timeout(f);
  if (r->timeout) r->deadline = uv_now(s->loop) + r->timeout;
  return run_handler(s, c, r, m->fn, m->udata);
}

/* Calls the handler; a request it keeps gets its own copy of the bytes. */
static int run_handler(mrpc_server_t *s, conn_t *c, mrpc_req_t *r,
                       mrpc_handler_fn fn, void *udata) {
  unsigned gen = r->gen;
  fn(r, udata);
  /* Still held by the handler: give it its own copy of the bytes. Without
   * memory for that, the request stays the handler's (it must still answer
   * it) but loses its bytes, and the connection is closed, so the answer
   * is dropped. */
  if (r->gen == gen && req_detach(r) < 0) {
    static const mrpc_frame_t empty;
    mrpc__log(s->opts.log, s->opts.log_udata, 1,
              "out of memory holding a request: closing its connection");
    r->frame = empty;
    r->frame.path = r->frame.method = r->frame.payload = r->frame.wire_payload = "";
    mrpc__stream_close(&c->st);
    return 1;
  }
  return 0;
}

/* ---- connections ---------------------------------------------------------- */

void mrpc__conn_unref(conn_t *c) {
  mrpc_server_t *s = c->srv;
  if (--c->refs > 0) return;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  free(c);
}

static void conn_on_error(mrpc__stream_t *st, int err) {
  conn_t *c = st->owner;
  if (err != UV_EOF && err != UV_ECONNRESET)
    mrpc__log(c->srv->opts.log, c->srv->opts.log_udata, 1,
              "closing connection: %s (%s)", mrpc_strerror(err),
              mrpc_err_name(err));
  mrpc__stream_close(st);
}

static void shutdown_done(mrpc_server_t *s);

static void conn_on_closed(mrpc__stream_t *st) {
  conn_t *c = st->owner;
  mrpc_server_t *s = c->srv;
  c->closed = 1;
  s->open_conns--;
  if (c->foreign && s->foreign) s->foreign(c, NULL, 0, s->foreign_udata);
  if (s->flushing && s->open_conns == 0) shutdown_done(s);
  mrpc__conn_unref(c);
  mrpc__server_unref(s);
}

/* The first read of a connection when a foreign hook is set: rpcx frames
 * begin with the magic byte; anything else goes to the hook from now on. */
static int conn_sniff(mrpc__stream_t *st, const char *data, size_t len) {
  conn_t *c = st->owner;
  mrpc_server_t *s = c->srv;
  if (!c->foreign && (len == 0 || (unsigned char)data[0] == MRPC_MAGIC)) return 1;
  if (!s->foreign || s->closing) {
    mrpc__stream_close(st);
    return 0;
  }
  c->foreign = 1;
  s->foreign(c, data, len, s->foreign_udata);
  return 0;
}

static void on_connection(uv_stream_t *server, int status) {
  listener_t *l = server->data;
  mrpc_server_t *s = l->srv;
  conn_t *c;
  if (status < 0 || s->closing) return;
  if (!(c = calloc(1, sizeof *c))) return;
  if (mrpc__stream_init(&c->st, s->loop, l->is_pipe, &s->opts.limits) < 0) {
    free(c);
    return;
  }
  c->st.owner = c;
  c->st.on_frame = on_frame;
  c->st.on_error = conn_on_error;
  c->st.on_closed = conn_on_closed;
  if (s->foreign) c->st.on_raw = conn_sniff;
  c->srv = s;
  c->refs = 1;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  s->open_conns++;
  s->live++;
  if (uv_accept(server, &c->st.u.stream) < 0) {
    mrpc__stream_close(&c->st);
    return;
  }
  if (s->nconns > s->opts.limits.max_conns) {
    mrpc__log(s->opts.log, s->opts.log_udata, 1,
              "refusing a connection: max_conns (%u) reached",
              s->opts.limits.max_conns);
    mrpc__stream_close(&c->st);
    return;
  }
  if (!l->is_pipe) uv_tcp_nodelay(&c->st.u.tcp, 1);
  if (mrpc__stream_start(&c->st) < 0) mrpc__stream_close(&c->st);
}

/* ---- the server ------------------------------------------------------------ */

int mrpc_server_new(uv_loop_t *loop, const mrpc_server_opts_t *opts,
                    mrpc_server_t **out) {
  mrpc_server_t *s = calloc(1, sizeof *s);
  if (!s) return MRPC_ENOMEM;
  s->loop = loop;
  if (opts) s->opts = *opts;
  mrpc_limits_default(&s->opts.limits);
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->live = 1; /* the timer */
  if (!s->opts.no_reflection && mrpc__reflection_add(s) < 0) {
    mrpc_server_close(s, NULL, NULL);
    return MRPC_ENOMEM;
  }
  *out = s;
  return 0;
}

static void listener_closed(uv_handle_t *h) {
  listener_t *l = h->data;
  mrpc_server_t *s = l->srv;
  if (l->is_pipe) unlink(l->addr + 5); /* we made the socket file */
  free(l);
  mrpc__server_unref(s);
}

/* Initialises a TCP listener's handle; with opts.reuseport the socket is
 * made at once (uv_tcp_init_ex) so that SO_REUSEPORT is set before the
 * bind (libuv 1.44 has no flag for it). The handle is initialised even when
 * this fails, so the caller closes it as usual. */
static int reuseport_init(mrpc_server_t *s, uv_tcp_t *t, int family) {
  uv_os_fd_t fd;
  int on = 1, r;
  if (!s->opts.reuseport) return uv_tcp_init(s->loop, t);
  if ((r = uv_tcp_init_ex(s->loop, t, (unsigned)family)) < 0) {
    uv_tcp_init(s->loop, t);
    return r;
  }
  if ((r = uv_fileno((uv_handle_t *)t, &fd)) < 0) return r;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) return uv_translate_sys_error(errno);
  return 0;
}

int mrpc_server_listen(mrpc_server_t *s, const char *network,
                       const char *address) {
  listener_t *l;
  int r;
  if (s->closing || s->shutting || s->nlisteners >= MAX_LISTENERS)
    return MRPC_EINVAL;
  if (!(l = calloc(1, sizeof *l))) return MRPC_ENOMEM;
  l->srv = s;
  l->u.handle.data = l;
  if (strcmp(network, "unix") == 0) {
    l->is_pipe = 1;
    if (strlen(address) + 6 > sizeof l->addr) {
      free(l);
      return MRPC_EADDR;
    }
    snprintf(l->addr, sizeof l->addr, "unix@%s", address);
    uv_pipe_init(s->loop, &l->u.pipe, 0);
    r = uv_pipe_bind(&l->u.pipe, address);
  } else if (strncmp(network, "tcp", 3) == 0) {
    struct sockaddr_storage ss;
    char host[256];
    int port, nl = sizeof ss;
    r = mrpc__sockaddr(address, &ss, host, sizeof host, &port);
    if (r != 0) {
      free(l);
      return MRPC_EADDR;
    }
    r = reuseport_init(s, &l->u.tcp, ss.ss_family);
    if (r == 0) r = uv_tcp_bind(&l->u.tcp, (struct sockaddr *)&ss, 0);
    if (r == 0) r = uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&ss, &nl);
    if (r == 0) r = mrpc__sockname(&ss, l->addr, sizeof l->addr);
  } else {
    free(l);
    return MRPC_EADDR;
  }
  s->live++;
  if (r == 0) r = uv_listen(&l->u.stream, 511, on_connection);
  if (r < 0) {
    if (l->is_pipe) l->addr[5] = 0; /* not ours: do not unlink */
    uv_close(&l->u.handle, listener_closed);
    return r;
  }
  s->listeners[s->nlisteners++] = l;
  return 0;
}

int mrpc_server_address(mrpc_server_t *s, int i, char *buf, size_t len) {
  if (i < 0 || i >= s->nlisteners) return MRPC_EINVAL;
  if (strlen(s->listeners[i]->addr) >= len) return UV_ENOBUFS;
  strcpy(buf, s->listeners[i]->addr);
  return 0;
}

size_t mrpc_server_conn_count(const mrpc_server_t *s) { return s->nconns; }
size_t mrpc_server_inflight(const mrpc_server_t *s) { return s->inflight; }

static void close_listeners(mrpc_server_t *s) {
  int i;
  for (i = 0; i < s->nlisteners; i++)
    uv_close(&s->listeners[i]->u.handle, listener_closed);
  s->nlisteners = 0;
}

/* The last step of a graceful shutdown: every connection is closed (its
 * answers written, or abandoned at the deadline); the user's callback runs
 * once. */
static void shutdown_done(mrpc_server_t *s) {
  mrpc_server_cb cb = s->shutdown_cb;
  if (!cb) return;
  s->shutdown_cb = NULL;
  s->flushing = 0;
  uv_timer_stop(&s->timer);
  cb(s, s->shutdown_udata);
}

static void on_flush_deadline(uv_timer_t *t) {
  mrpc_server_t *s = t->data;
  conn_t *c;
  mrpc__log(s->opts.log, s->opts.log_udata, 1,
            "shutdown: %zu connections still writing after the timeout",
            s->open_conns);
  for (c = s->conns; c; c = c->next) mrpc__stream_close(&c->st);
}

static void on_no_conns(uv_timer_t *t) { shutdown_done(t->data); }

/* Calls are answered (or abandoned): every connection closes once what it
 * has to write is written; the callback comes when the last one is closed,
 * or when the timeout passes again and the rest are closed by force. */
static void shutdown_flush(mrpc_server_t *s) {
  conn_t *c;
  if (s->flushing || !s->shutdown_cb) return;
  s->flushing = 1;
  uv_timer_stop(&s->timer);
  for (c = s->conns; c; c = c->next) mrpc__stream_close_after_flush(&c->st);
  if (s->open_conns == 0) /* never call back from inside mrpc_server_shutdown */
    uv_timer_start(&s->timer, on_no_conns, 0, 0);
  else
    uv_timer_start(&s->timer, on_flush_deadline, s->shutdown_timeout, 0);
}

void mrpc__server_shutdown_check(mrpc_server_t *s) {
  if (s->shutting && s->inflight == 0) shutdown_flush(s);
}

static void on_shutdown_timer(uv_timer_t *t) {
  mrpc_server_t *s = t->data;
  mrpc__log(s->opts.log, s->opts.log_udata, 1,
            "shutdown: %zu calls still running after the timeout",
            s->inflight);
  shutdown_flush(s);
}

int mrpc_server_shutdown(mrpc_server_t *s, uint64_t timeout_ms,
                         mrpc_server_cb cb, void *udata) {
  if (s->closing || s->shutting) return MRPC_ECLOSED;
  uv_update_time(s->loop); /* the host may have blocked: count from now */
  s->shutting = 1;
  s->shutdown_cb = cb;
  s->shutdown_udata = udata;
  s->shutdown_timeout = timeout_ms;
  close_listeners(s);
  if (s->inflight == 0) shutdown_flush(s);
  else uv_timer_start(&s->timer, on_shutdown_timer, timeout_ms, 0);
  return 0;
}

void mrpc__server_unref(mrpc_server_t *s) {
  mrpc_server_cb cb;
  void *ud;
  service_t *v;
  mrpc_req_t *r;
  if (--s->live > 0 || !s->closing) return;
  cb = s->close_cb;
  ud = s->close_udata;
  while ((v = s->services)) {
    s->services = v->next;
    free_service(v);
  }
  while ((r = s->free_reqs)) {
    s->free_reqs = r->next_free;
    mrpc_buf_free(&r->store);
    free(r->meta);
    free(r);
  }
  mrpc_buf_free(&s->scratch);
  free(s);
  if (cb) cb(NULL, ud);
}

static void timer_closed(uv_handle_t *h) { mrpc__server_unref(h->data); }

void mrpc_server_close(mrpc_server_t *s, mrpc_server_cb cb, void *udata) {
  conn_t *c;
  if (s->closing) return;
  s->closing = 1;
  s->close_cb = cb;
  s->close_udata = udata;
  s->shutdown_cb = NULL;
  s->flushing = 0;
  close_listeners(s);
  for (c = s->conns; c; c = c->next) mrpc__stream_close(&c->st);
  uv_close((uv_handle_t *)&s->timer, timer_closed);
}
