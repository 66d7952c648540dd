/* registry_redis_conn.c: the Redis registry's hiredis connection layer on
 * the host's libuv loop: our poll adapter, the command connection with its
 * reconnect backoff, and the queue of operations waiting for it.
 *
 * The registry has one command connection, opened lazily on the first
 * operation and reopened with backoff (0.2 s doubling to 5 s) while
 * instances are registered; once it is back every instance is SET again.
 * Operations issued while it is not up wait in a queue; they fail when the
 * next connection attempt fails. Watches open connections of their own
 * through the same adapter (registry_redis_watch.c).
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
#include <stdio.h>
#include <cjson/cJSON.h>
#include "registry/redis/redis.h"

static void cmd_gone(redis_t *rr, conn_t *c);

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
  if (c->w) mrpc__redis_watch_conn_gone(c->w, c);
  else cmd_gone(c->rr, c);
}

/* Starts a connection; NULL when it failed at once. */
conn_t *mrpc__redis_conn_open(redis_t *rr, watch_t *w, redisConnectCallback *on_connect) {
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
  c->w = w;
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

/* ---- operations -------------------------------------------------------- */

op_t *mrpc__redis_op_new(redis_t *rr, int kind, const char *key, const char *meta) {
  op_t *op = calloc(1, sizeof *op);
  if (!op) return NULL;
  op->rr = rr;
  op->kind = kind;
  if ((key && !(op->key = strdup(key))) || (meta && !(op->meta = strdup(meta)))) {
    mrpc__redis_op_free(op);
    return NULL;
  }
  return op;
}

void mrpc__redis_op_free(op_t *op) {
  size_t i;
  for (i = 0; i < op->nkeys; i++) free(op->keys[i]);
  free(op->keys);
  free(op->key);
  free(op->meta);
  free(op->service);
  free(op->match);
  free(op);
}

void mrpc__redis_list_complete(op_t *op, int status, const mrpc_reg_entry_t *l, size_t n) {
  if (op->w) mrpc__redis_watch_listed(op->w, status, l, n);
  else op->lcb(status, l, n, op->udata);
}

/* Ends an operation with `status` (a LIST with no entries) and frees it. */
void mrpc__redis_op_done(op_t *op, int status) {
  if (op->kind == OP_LIST) mrpc__redis_list_complete(op, status, NULL, 0);
  else if (op->cb) op->cb(status, op->udata);
  mrpc__redis_op_free(op);
}

void mrpc__redis_fail_ops(op_t *q, int status) {
  while (q) {
    op_t *next = q->next;
    mrpc__redis_op_done(q, status);
    q = next;
  }
}

int mrpc__redis_send_argv(redis_t *rr, redisCallbackFn *fn, void *priv, int argc,
                     const char **argv, const size_t *lens) {
  if (!rr->cmd || !rr->cmd->ac) return -1;
  return redisAsyncCommandArgv(rr->cmd->ac, fn, priv, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

/* rpcx's Redis plugin stores through libkv, whose value is the JSON of a
 * KVPair: {"Key": key, "Value": base64(meta), "LastIndex": n}. Writing the
 * same lets Go rpcx clients discover moonrpc servers in a shared Redis. */
static char *libkv_value(redis_t *rr, const char *key, const char *meta) {
  cJSON *o = cJSON_CreateObject();
  char *enc = mrpc__b64_enc(meta, strlen(meta)), *out = NULL;
  if (o && enc && cJSON_AddStringToObject(o, "Key", key) &&
      cJSON_AddStringToObject(o, "Value", enc) &&
      cJSON_AddNumberToObject(o, "LastIndex", (double)uv_now(rr->r->loop)))
    out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  free(enc);
  return out;
}

char *mrpc__redis_libkv_meta(const char *v, size_t len) {
  cJSON *o, *val;
  char *meta = NULL;
  if (len == 0 || v[0] != '{' || !(o = cJSON_ParseWithLength(v, len))) return NULL;
  val = cJSON_GetObjectItemCaseSensitive(o, "Value");
  if (cJSON_IsString(val)) meta = mrpc__b64_dec(val->valuestring);
  else if (cJSON_IsNull(val)) meta = strdup("");
  cJSON_Delete(o);
  return meta;
}

int mrpc__redis_send_set(redis_t *rr, redisCallbackFn *fn, void *priv, const char *key,
                    const char *meta, unsigned ttl) {
  char t[16], *value = libkv_value(rr, key, meta);
  const char *argv[5] = {"SET", key, value, "EX", t};
  size_t lens[5];
  int i, rc;
  if (!value) return MRPC_ENOMEM;
  snprintf(t, sizeof t, "%u", ttl);
  for (i = 0; i < 5; i++) lens[i] = strlen(argv[i]);
  rc = mrpc__redis_send_argv(rr, fn, priv, 5, argv, lens);
  cJSON_free(value);
  return rc;
}

int mrpc__redis_send_op(redis_t *rr, op_t *op) {
  const char *argv[6];
  size_t lens[6];
  int i, argc;
  switch (op->kind) {
  case OP_SET:
    return mrpc__redis_send_set(rr, mrpc__redis_on_reply, op, op->key, op->meta, op->ttl);
  case OP_DEL:
    argv[0] = "DEL";
    argv[1] = op->key;
    argc = 2;
    break;
  default:
    argv[0] = "SCAN";
    argv[1] = op->cursor;
    argv[2] = "MATCH";
    argv[3] = op->match;
    argv[4] = "COUNT";
    argv[5] = "256";
    argc = 6;
    break;
  }
  for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
  return mrpc__redis_send_argv(rr, mrpc__redis_on_reply, op, argc, argv, lens);
}

static void schedule(redis_t *rr, unsigned delay);

/* Connects when nothing is under way; the attempt runs from a timer. */
static void kick(redis_t *rr) {
  if (!rr->closing && rr->cstate == C_IDLE) schedule(rr, rr->backoff);
}

/* Sends `op` now, or queues it for the next connection. Never calls back. */
void mrpc__redis_submit(redis_t *rr, op_t *op) {
  if (rr->cstate == C_UP && mrpc__redis_send_op(rr, op) == 0) return;
  if (rr->cstate == C_UP) rr->cstate = C_DOWN; /* hiredis is ending it */
  op->next = NULL;
  if (rr->qtail) rr->qtail->next = op;
  else rr->qhead = op;
  rr->qtail = op;
  kick(rr);
}

void mrpc__redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
  op_t *op = privdata;
  redisReply *rep = reply;
  redis_t *rr = op->rr;
  if (!rep) { /* the connection is going away */
    if (rr->cmd && rr->cmd->ac == ac && rr->cstate == C_UP) rr->cstate = C_DOWN;
    mrpc__redis_op_done(op, MRPC_ECONNLOST);
    return;
  }
  if (rep->type == REDIS_REPLY_ERROR) mrpc__redis_op_done(op, MRPC_EREMOTE);
  else if (op->kind != OP_LIST) mrpc__redis_op_done(op, 0);
  else if (op->mget) mrpc__redis_list_values(op, rep);
  else mrpc__redis_list_keys(op, rep);
}

/* ---- the command connection ------------------------------------------- */

static void on_cmd_connect(const redisAsyncContext *ac, int status) {
  conn_t *c = ac->data;
  redis_t *rr = c->rr;
  op_t *op;
  if (status != REDIS_OK) return; /* the cleanup hook reports it */
  c->up = 1;
  c->up_at = uv_now(rr->r->loop);
  rr->cstate = C_UP;
  if (rr->closing) return; /* the close step deletes and disconnects */
  mrpc__redis_refresh(rr, 1); /* registers everything again */
  while (rr->cstate == C_UP && (op = rr->qhead)) {
    if (!(rr->qhead = op->next)) rr->qtail = NULL;
    if (mrpc__redis_send_op(rr, op) < 0) mrpc__redis_op_done(op, MRPC_ECONNLOST);
  }
}

static void on_retry(uv_timer_t *t) {
  redis_t *rr = t->data;
  rr->cstate = C_CONNECTING;
  if (!(rr->cmd = mrpc__redis_conn_open(rr, NULL, on_cmd_connect))) cmd_gone(rr, NULL);
}

static void schedule(redis_t *rr, unsigned delay) {
  rr->cstate = C_WAIT;
  uv_timer_start(&rr->timer, on_retry, delay, 0);
}

/* The command connection ended (c), or could not start (c NULL). */
static void cmd_gone(redis_t *rr, conn_t *c) {
  op_t *q;
  rr->cmd = NULL;
  rr->cstate = C_IDLE;
  if (rr->closing) {
    mrpc__redis_check_done(rr);
    return;
  }
  if (c && c->up && uv_now(rr->r->loop) - c->up_at >= LONG_LIVED_MS) {
    rr->backoff = 0; /* a lost connection: try again at once */
    if (rr->insts || rr->qhead) schedule(rr, 0);
    return;
  }
  rr->backoff = rr->backoff ? rr->backoff * 2 : BACKOFF_MIN_MS;
  if (rr->backoff > BACKOFF_MAX_MS) rr->backoff = BACKOFF_MAX_MS;
  q = rr->qhead;
  rr->qhead = rr->qtail = NULL;
  if (rr->insts) schedule(rr, rr->backoff);
  mrpc__redis_fail_ops(q, UV_ECONNREFUSED); /* new operations they start queue up */
}
