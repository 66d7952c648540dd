/* lifetime.c: what keeps a server and its connections alive, and the
 * graceful shutdown that goes on when the last call lets go.
 *
 * A connection is freed when its handle is closed and no request from it is
 * still held (conn->refs: 1 for the open handle, +1 per request, hold or
 * piece of host work). The server is freed when it was closed, every handle
 * it owns is closed and every request released (s->live counts them all).
 * A call (s->inflight: a request, or a host's work begun on a connection)
 * holds both; when the last one ends during a graceful shutdown, the
 * connections are closed once written and the shutdown callback comes when
 * the last of them is closed.
 *
 * server.c counts the handles it opens; calls and holds begin here, and
 * every reference is dropped here, so the request code (req.c), the
 * host-facing connection API (server_conn.c) and the top (server.c) all
 * call down into this file and it calls nothing of theirs: it only frees
 * the server's own memory (the service table through services.c) and
 * closes streams. */
#include <stdlib.h>
#include "server/server.h"

/* ---- references ----------------------------------------------------------- */

void mrpc__conn_ref(conn_t *c) {
  c->refs++;
  c->srv->live++;
}

/* Drops one of the connection's references; the last frees it. */
static void conn_unref(conn_t *c) {
  mrpc_server_t *s = c->srv;
  if (--c->refs > 0) return;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->nconns--;
  free(c);
}

void mrpc__server_unref(mrpc_server_t *s) {
  mrpc_server_cb cb;
  void *ud;
  mrpc_req_t *r;
  if (--s->live > 0 || !s->closing) return;
  cb = s->close_cb;
  ud = s->close_udata;
  mrpc__services_free(s);
  while ((r = s->free_reqs)) {
    s->free_reqs = r->next_free;
    mrpc_buf_free(&r->store);
    free(r->meta);
    free(r);
  }
  mrpc_buf_free(&s->scratch);
  mrpc__rbuf_free(&s->rbuf);
  free(s);
  if (cb) cb(NULL, ud);
}

void mrpc__conn_unref(conn_t *c) {
  mrpc_server_t *s = c->srv;
  conn_unref(c);
  mrpc__server_unref(s);
}

/* ---- graceful shutdown ---------------------------------------------------- */

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

static void on_shutdown_timer(uv_timer_t *t) {
  mrpc_server_t *s = t->data;
  mrpc__log(s->opts.log, s->opts.log_udata, 1,
            "shutdown: %zu calls still running after the timeout",
            s->inflight);
  shutdown_flush(s);
}

void mrpc__shutdown_begin(mrpc_server_t *s) {
  if (s->inflight == 0) shutdown_flush(s);
  else uv_timer_start(&s->timer, on_shutdown_timer, s->shutdown_timeout, 0);
}

/* ---- calls and closes ------------------------------------------------------ */

void mrpc__call_begin(conn_t *c) {
  mrpc__conn_ref(c);
  c->calls++;
  c->srv->inflight++;
}

void mrpc__call_end(conn_t *c) {
  mrpc_server_t *s = c->srv;
  s->inflight--;
  if (--c->calls == 0) c->st.last_active = uv_now(s->loop); /* idle from now */
  conn_unref(c);
  if (s->shutting && s->inflight == 0) shutdown_flush(s);
  mrpc__server_unref(s);
}

void mrpc__conn_closed(conn_t *c) {
  mrpc_server_t *s = c->srv;
  if (s->flushing && s->open_conns == 0) shutdown_done(s);
  mrpc__conn_unref(c);
}
