/* req.c: a request, from the frame that brought it to the one answer it
 * gets (moonrpc/server.h's mrpc_req_*): taking one from the server's free
 * list, the copy of its bytes a handler that keeps it needs, the accessors,
 * and the answer (reply or error) or drop that releases it. A request is a
 * call: it holds its connection and the server (lifetime.c) until then.
 * Requests are never returned to malloc before the server itself goes. */
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

mrpc_req_t *mrpc__req_get(mrpc_server_t *s, conn_t *c, const mrpc_frame_t *f) {
  mrpc_req_t *r = s->free_reqs;
  if (r) s->free_reqs = r->next_free;
  else if (!(r = calloc(1, sizeof *r))) return NULL;
  r->srv = s;
  r->conn = c;
  r->frame = *f;
  r->timeout = r->deadline = 0;
  r->data = NULL;
  mrpc__call_begin(c);
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
  mrpc__call_end(c);
}

int mrpc__req_detach(mrpc_req_t *r) {
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
