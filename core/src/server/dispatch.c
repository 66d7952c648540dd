/* dispatch.c: where a frame that arrived on a connection goes: a heartbeat
 * is echoed; a request becomes an mrpc_req_t, passes the auth hook, and runs
 * the handler its service and method name (or the fallback hook, for a
 * service not registered), or is answered with rpcx's own error. The
 * connection's stream calls mrpc__dispatch_frame for each frame it decodes
 * (server.c hands it over); the answer goes back through req.c. */
#include <stdio.h>
#include <string.h>
#include "server/server.h"

void mrpc_server_set_auth(mrpc_server_t *s, mrpc_auth_fn fn, void *udata) {
  s->opts.auth = fn;
  s->opts.auth_udata = udata;
}

void mrpc_server_set_fallback(mrpc_server_t *s, mrpc_handler_fn fn, void *udata) {
  s->fallback = fn;
  s->fallback_udata = udata;
}

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

/* Calls the handler; a request it keeps gets its own copy of the bytes. */
static int run_handler(mrpc_server_t *s, conn_t *c, mrpc_req_t *r,
                       mrpc_handler_fn fn, void *udata) {
  unsigned gen = r->gen;
  fn(r, udata);
  /* Still held by the handler: give it its own copy of the bytes. Without
   * memory for that, the request stays the handler's (it must still answer
   * it) but loses its bytes, and the connection is closed, so the answer
   * is dropped. */
  if (r->gen == gen && mrpc__req_detach(r) < 0) {
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

int mrpc__dispatch_frame(mrpc__stream_t *st, mrpc_frame_t *f) {
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
  if (!(r = mrpc__req_get(s, c, f))) return 1;
  if (s->shutting) {
    mrpc_req_error(r, "server is shutting down", NULL, 0, NULL, 0);
    return 0;
  }
  if (s->opts.auth && check_auth(s, c, r) != 0) return 1;
  if (s->closing || c->st.closing) { /* the auth hook closed us */
    mrpc_req_drop(r);
    return 1;
  }
  v = mrpc__service_find(s, f->path, f->path_len);
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
  m = mrpc__method_find(v, f->method, f->method_len);
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
