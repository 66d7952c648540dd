/* redis_conn.c: the bottom of the Redis registry: a hiredis connection on
 * the host's libuv loop (our poll adapter), the command connection's
 * connect/reconnect with backoff, and the count of the backend's handles
 * that frees the registry once it is closing and they all closed.
 *
 * It calls nothing above it. A connection reports that hiredis freed its
 * context through the `gone` hook its owner handed to conn_open (a watch's
 * connection reports to the watch); the command connection reports "up"
 * and "an attempt failed" through rr->on_cmd_up and rr->on_cmd_refused,
 * which redis.c sets; replies go to the callbacks the senders handed
 * hiredis.
 *
 * The registry has one command connection, opened lazily on the first
 * operation and reopened with backoff (0.2 s doubling to 5 s) while
 * instances are registered; once it is back every instance is SET again
 * (on_cmd_up). Operations issued while it is not up wait in rr's queue;
 * they fail when the next connection attempt fails (on_cmd_refused).
 * Watches open connections of their own through the same adapter.
 *
 * hiredis ownership. hiredis frees an async context itself when it
 * disconnects (after running every pending callback with a NULL reply), so
 * a context is only ever ended with redisAsyncDisconnect / redisAsyncFree,
 * both of which hiredis defers when called from inside its own callbacks.
 * We use our own event hooks instead of adapters/libuv.h: 0.14.1's adapter
 * ignores a poll error (a refused connection would hang forever) and frees
 * its handle behind our back. Its `cleanup` hook is our one signal that a
 * context is gone: it comes after every callback of that context ran. */
#include <stdlib.h>
#include <string.h>
#include "registry/redis/redis.h"

/* ---- the event hooks (our libuv adapter) ------------------------------- */

static void ev_poll(uv_poll_t *h, int status, int events) {
  conn_t *c = h->data;
  if (status < 0) {
    /* libuv stopped the handle on POLLERR: let hiredis read the socket
     * error (a refused connect, a reset), then poll again if it lives. */
    if (c->ac) redisAsyncHandleRead(c->ac);
    if (c->ac && c->events) uv_poll_start(&c->poll, c->events, ev_poll);
    return;
  }
  if (c->ac && (events & UV_READABLE)) redisAsyncHandleRead(c->ac);
  if (c->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(c->ac);
}

static void ev_update(conn_t *c, int events) {
  c->events = events;
  if (events) uv_poll_start(&c->poll, events, ev_poll);
  else uv_poll_stop(&c->poll);
}

static void ev_add_read(void *p) { conn_t *c = p; ev_update(c, c->events | UV_READABLE); }
static void ev_del_read(void *p) { conn_t *c = p; ev_update(c, c->events & ~UV_READABLE); }
static void ev_add_write(void *p) { conn_t *c = p; ev_update(c, c->events | UV_WRITABLE); }
static void ev_del_write(void *p) { conn_t *c = p; ev_update(c, c->events & ~UV_WRITABLE); }

static void on_poll_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  redis_t *rr = c->rr;
  free(c);
  rr->live--;
  mrpc__redis_check_done(rr);
}

/* hiredis is freeing the context: every callback of it has run. */
static void ev_cleanup(void *p) {
  conn_t *c = p;
  c->ac = NULL;
  uv_close((uv_handle_t *)&c->poll, on_poll_closed);
  c->gone(c);
}

conn_t *mrpc__redis_conn_open(redis_t *rr, void *owner, redisConnectCallback *on_connect,
                              void (*gone)(conn_t *c)) {
  conn_t *c = calloc(1, sizeof *c);
  redisAsyncContext *ac;
  if (!c) return NULL;
  ac = redisAsyncConnect(rr->host, rr->port);
  if (!ac || ac->err || uv_poll_init(rr->r->loop, &c->poll, ac->c.fd) != 0) {
    if (ac) redisAsyncFree(ac); /* no hooks yet: frees at once, silently */
    free(c);
    return NULL;
  }
  c->poll.data = c;
  c->ac = ac;
  c->rr = rr;
  c->owner = owner;
  c->gone = gone;
  rr->live++;
  ac->data = c;
  ac->ev.data = c;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect); /* after the hooks: it polls */
  return c;
}

int mrpc__redis_conn_lived(const conn_t *c) {
  return c->up && uv_now(c->rr->r->loop) - c->up_at >= LONG_LIVED_MS;
}

unsigned mrpc__redis_backoff_next(unsigned backoff) {
  backoff = backoff ? backoff * 2 : BACKOFF_MIN_MS;
  return backoff > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff;
}

/* ---- the command connection ------------------------------------------- */

static void cmd_gone(redis_t *rr, conn_t *c);

static void on_cmd_connect(const redisAsyncContext *ac, int status) {
  conn_t *c = ac->data;
  redis_t *rr = c->rr;
  if (status != REDIS_OK) return; /* the cleanup hook reports it */
  c->up = 1;
  c->up_at = uv_now(rr->r->loop);
  rr->cstate = C_UP;
  if (rr->closing) return; /* the close step deletes and disconnects */
  rr->on_cmd_up(rr);
}

static void on_cmd_conn_gone(conn_t *c) { cmd_gone(c->rr, c); }

static void on_retry(uv_timer_t *t) {
  redis_t *rr = t->data;
  rr->cstate = C_CONNECTING;
  if (!(rr->cmd = mrpc__redis_conn_open(rr, rr, on_cmd_connect, on_cmd_conn_gone)))
    cmd_gone(rr, NULL);
}

static void schedule(redis_t *rr, unsigned delay) {
  rr->cstate = C_WAIT;
  uv_timer_start(&rr->timer, on_retry, delay, 0);
}

void mrpc__redis_cmd_kick(redis_t *rr) {
  if (!rr->closing && rr->cstate == C_IDLE) schedule(rr, rr->backoff);
}

/* The command connection ended (c), or could not start (c NULL). */
static void cmd_gone(redis_t *rr, conn_t *c) {
  rr->cmd = NULL;
  rr->cstate = C_IDLE;
  if (rr->closing) {
    mrpc__redis_check_done(rr);
    return;
  }
  if (c && mrpc__redis_conn_lived(c)) {
    rr->backoff = 0; /* a lost connection: try again at once */
    if (rr->insts || rr->qhead) schedule(rr, 0);
    return;
  }
  rr->backoff = mrpc__redis_backoff_next(rr->backoff);
  if (rr->insts) schedule(rr, rr->backoff);
  rr->on_cmd_refused(rr); /* new operations its callbacks start queue up */
}

/* ---- the registry's lifetime ------------------------------------------- */

void mrpc__redis_handle_closed(uv_handle_t *h) {
  redis_t *rr = h->data;
  rr->live--;
  mrpc__redis_check_done(rr);
}

void mrpc__redis_check_done(redis_t *rr) {
  mrpc_registry_t *r = rr->r;
  mrpc_reg_cb cb;
  void *ud;
  if (!rr->closing || rr->done) return;
  if (!rr->timer_closing && !rr->cmd && rr->nwatch == 0) {
    rr->timer_closing = 1;
    uv_close((uv_handle_t *)&rr->timer, mrpc__redis_handle_closed);
  }
  if (rr->live > 0 || rr->nwatch > 0) return;
  rr->done = 1;
  cb = rr->close_cb;
  ud = rr->close_udata;
  r->backend = NULL;
  free(rr);
  if (cb) cb(0, ud);
}
