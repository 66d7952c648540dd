/* server_conn.c: what a host does with a server's connections beyond
 * answering requests (see moonrpc/server.h): hold and release, work begun
 * and ended, the peer's address, server push (rpcx's SendMessage), raw
 * writes for foreign protocols and the foreign hook, corking. The counts
 * behind hold and work are lifetime.c's. */
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

mrpc_conn_t *mrpc_req_conn(const mrpc_req_t *r) { return r->conn; }

void mrpc_conn_hold(mrpc_conn_t *c) { mrpc__conn_ref(c); }
void mrpc_conn_release(mrpc_conn_t *c) { mrpc__conn_unref(c); }

int mrpc_conn_work_begin(mrpc_conn_t *c) {
  mrpc_server_t *s = c->srv;
  if (s->shutting || s->closing) return MRPC_ECLOSED;
  mrpc__call_begin(c);
  return 0;
}

void mrpc_conn_work_end(mrpc_conn_t *c) { mrpc__call_end(c); }

int mrpc_conn_is_open(const mrpc_conn_t *c) {
  return mrpc__conn_writable(c);
}

void mrpc_conn_set_data(mrpc_conn_t *c, void *data) { c->data = data; }
void *mrpc_conn_get_data(const mrpc_conn_t *c) { return c->data; }
mrpc_server_t *mrpc_conn_server(const mrpc_conn_t *c) { return c->srv; }

int mrpc__conn_peer(conn_t *c, char *buf, size_t len) {
  int rc;
  if (!c->peer[0] && (rc = mrpc__stream_peer(&c->st, c->peer, sizeof c->peer)) < 0)
    return rc;
  if (strlen(c->peer) >= len) return UV_ENOBUFS;
  strcpy(buf, c->peer);
  return 0;
}

int mrpc_conn_peer(mrpc_conn_t *c, char *buf, size_t len) {
  if (!mrpc_conn_is_open(c)) return MRPC_ECONNLOST;
  return mrpc__conn_peer(c, buf, len);
}

int mrpc_conn_push(mrpc_conn_t *c, const mrpc_frame_t *msg, int gzip) {
  mrpc_frame_t f;
  int rc;
  if (c->foreign) return MRPC_EINVAL;
  if (!mrpc_conn_is_open(c)) return MRPC_ECONNLOST;
  f = *msg;
  f.version = 0;
  f.flags = MRPC_FLAG_ONEWAY; /* a request, oneway, status normal */
  f.seq = ++c->srv->push_seq;
  f.wire_payload = NULL;
  f.wire_payload_len = 0;
  rc = mrpc_frame_encode_auto(mrpc__stream_out(&c->st), &f, gzip, &c->srv->scratch);
  if (rc == 0) mrpc__stream_flush(&c->st);
  return rc;
}

int mrpc_conn_write(mrpc_conn_t *c, const char *data, size_t len) {
  int rc;
  if (!mrpc_conn_is_open(c)) return MRPC_ECONNLOST;
  if ((rc = mrpc_buf_append(mrpc__stream_out(&c->st), data, len)) < 0) return rc;
  mrpc__stream_flush(&c->st);
  return mrpc_conn_is_open(c) ? 0 : MRPC_ECONNLOST;
}

void mrpc_conn_close(mrpc_conn_t *c) {
  if (!c->closed) mrpc__stream_close_after_flush(&c->st);
}

void mrpc_server_set_foreign(mrpc_server_t *s, mrpc_foreign_fn fn, void *udata) {
  s->foreign = fn;
  s->foreign_udata = udata;
}

void mrpc_conn_cork(mrpc_conn_t *c) { mrpc__stream_hold(&c->st); }
void mrpc_conn_uncork(mrpc_conn_t *c) { mrpc__stream_release(&c->st); }
