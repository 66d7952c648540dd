/* redis_ops.c: the Redis registry's operations on the command
 * connection: an operation's life (new, queued, sent, ended exactly once),
 * the queue of those waiting for the connection, the SET of an instance
 * (its value in libkv's format), DEL, and a list: SCAN MATCH
 * "base/Service/" + "*" until the cursor is back at 0, then one MGET of the
 * keys gathered.
 *
 * It calls down into redis_conn.c (to start the command connection) and
 * redis_format.c, and reports upward only through each operation's cb or
 * lcb (a watch's list reports to the watch that way). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "registry/redis/redis.h"

#define REDIS_MAX_KEYS 65536 /* instances one list may gather */

/* ---- an operation's life ----------------------------------------------- */

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

void mrpc__redis_op_done(op_t *op, int status) {
  if (op->kind == OP_LIST) op->lcb(status, NULL, 0, op->udata);
  else if (op->cb) op->cb(status, op->udata);
  mrpc__redis_op_free(op);
}

op_t *mrpc__redis_list_op(redis_t *rr, const char *service) {
  char prefix[KEY_MAX];
  op_t *op;
  if (mrpc__reg_key(rr->r, service, NULL, prefix, sizeof prefix) < 0) return NULL;
  if (!(op = mrpc__redis_op_new(rr, OP_LIST, NULL, NULL))) return NULL;
  op->plen = strlen(prefix);
  strcpy(op->cursor, "0");
  if (!(op->service = strdup(service)) || !(op->match = mrpc__redis_glob_escape("", prefix, "*"))) {
    mrpc__redis_op_free(op);
    return NULL;
  }
  return op;
}

/* ---- sending ----------------------------------------------------------- */

int mrpc__redis_send_argv(redis_t *rr, redisCallbackFn *fn, void *priv, int argc,
                          const char **argv, const size_t *lens) {
  if (!rr->cmd || !rr->cmd->ac) return -1;
  return redisAsyncCommandArgv(rr->cmd->ac, fn, priv, argc, argv, lens) == REDIS_OK ? 0 : -1;
}

/* The value is what rpcx's Redis plugin writes (redis_format.c); its
 * LastIndex is our loop's clock, as good as any version number. */
int mrpc__redis_send_set(redis_t *rr, redisCallbackFn *fn, void *priv, const char *key,
                         const char *meta, unsigned ttl) {
  char t[16], *value = mrpc__redis_libkv_value(key, meta, uv_now(rr->r->loop));
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

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

static int send_op(redis_t *rr, op_t *op) {
  const char *argv[6];
  size_t lens[6];
  int i, argc;
  switch (op->kind) {
  case OP_SET:
    return mrpc__redis_send_set(rr, on_reply, op, op->key, op->meta, op->ttl);
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
  return mrpc__redis_send_argv(rr, on_reply, op, argc, argv, lens);
}

/* ---- the queue --------------------------------------------------------- */

void mrpc__redis_submit(redis_t *rr, op_t *op) {
  if (rr->cstate == C_UP && send_op(rr, op) == 0) return;
  if (rr->cstate == C_UP) rr->cstate = C_DOWN; /* hiredis is ending it */
  op->next = NULL;
  if (rr->qtail) rr->qtail->next = op;
  else rr->qhead = op;
  rr->qtail = op;
  mrpc__redis_cmd_kick(rr);
}

void mrpc__redis_flush_queued(redis_t *rr) {
  op_t *op;
  while (rr->cstate == C_UP && (op = rr->qhead)) {
    if (!(rr->qhead = op->next)) rr->qtail = NULL;
    if (send_op(rr, op) < 0) mrpc__redis_op_done(op, MRPC_ECONNLOST);
  }
}

void mrpc__redis_fail_queued(redis_t *rr, int status) {
  op_t *q = rr->qhead;
  rr->qhead = rr->qtail = NULL;
  while (q) {
    op_t *next = q->next;
    mrpc__redis_op_done(q, status);
    q = next;
  }
}

/* ---- lists ------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_entry(const void *a, const void *b) {
  const mrpc_reg_entry_t *x = a, *y = b;
  int c = strcmp(x->service, y->service);
  return c ? c : strcmp(x->addr, y->addr);
}

/* The MGET reply: the values of op->keys, NIL for keys gone meanwhile. */
static void list_values(op_t *op, redisReply *rep) {
  mrpc_reg_entry_t *l;
  char **own; /* metadata decoded from libkv values */
  size_t i, n = 0;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != op->nkeys) {
    mrpc__redis_op_done(op, MRPC_EPROTO);
    return;
  }
  l = calloc(op->nkeys, sizeof *l);
  own = calloc(op->nkeys * 2, sizeof *own); /* metadata, service names */
  if (!l || !own) {
    free(l);
    free(own);
    mrpc__redis_op_done(op, MRPC_ENOMEM);
    return;
  }
  for (i = 0; i < op->nkeys; i++) {
    redisReply *v = rep->element[i];
    if (v->type != REDIS_REPLY_STRING) continue;
    l[n].service = op->service;
    l[n].addr = op->keys[i] + op->plen;
    if (!*op->service) { /* every service: "Service/addr" after the base */
      const char *slash = strchr(l[n].addr, '/');
      if (!slash || !(own[op->nkeys + n] = mrpc__strndup(l[n].addr, (size_t)(slash - l[n].addr)))) {
        free(own[n]); /* not an instance key, or no memory: skip it */
        own[n] = NULL;
        continue;
      }
      l[n].service = own[op->nkeys + n];
      l[n].addr = slash + 1;
    }
    /* libkv's JSON (what we and Go rpcx write), or a plain value */
    own[n] = mrpc__redis_libkv_meta(v->str, v->len);
    l[n].meta = own[n] ? own[n] : v->str;
    n++;
  }
  qsort(l, n, sizeof *l, cmp_entry);
  op->lcb(0, l, n, op->udata);
  for (i = 0; i < n; i++) {
    free(own[i]);
    free(own[op->nkeys + i]);
  }
  free(own);
  free(l);
  mrpc__redis_op_free(op);
}

/* A SCAN reply: gathers keys, then scans on or asks for their values. */
static void list_keys(op_t *op, redisReply *rep) {
  redisReply *cur, *arr;
  size_t i, j;
  if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
      (cur = rep->element[0])->type != REDIS_REPLY_STRING ||
      (arr = rep->element[1])->type != REDIS_REPLY_ARRAY || cur->len >= sizeof op->cursor) {
    mrpc__redis_op_done(op, MRPC_EPROTO);
    return;
  }
  for (i = 0; i < arr->elements; i++) {
    redisReply *k = arr->element[i];
    if (k->type != REDIS_REPLY_STRING || k->len <= op->plen) continue;
    if (op->nkeys == op->cap) {
      size_t ncap = op->cap ? op->cap * 2 : 16;
      char **nk;
      if (ncap > REDIS_MAX_KEYS || !(nk = realloc(op->keys, ncap * sizeof *nk))) {
        mrpc__redis_op_done(op, ncap > REDIS_MAX_KEYS ? MRPC_ETOOBIG : MRPC_ENOMEM);
        return;
      }
      op->keys = nk;
      op->cap = ncap;
    }
    if (!(op->keys[op->nkeys] = mrpc__strndup(k->str, k->len))) {
      mrpc__redis_op_done(op, MRPC_ENOMEM);
      return;
    }
    op->nkeys++;
  }
  memcpy(op->cursor, cur->str, cur->len);
  op->cursor[cur->len] = 0;
  if (strcmp(op->cursor, "0") != 0) {
    if (send_op(op->rr, op) < 0) mrpc__redis_op_done(op, MRPC_ECONNLOST);
    return;
  }
  if (op->nkeys == 0) {
    op->lcb(0, NULL, 0, op->udata);
    mrpc__redis_op_free(op);
    return;
  }
  /* SCAN may return a key twice. */
  qsort(op->keys, op->nkeys, sizeof *op->keys, cmp_str);
  for (i = j = 1; i < op->nkeys; i++) {
    if (strcmp(op->keys[i], op->keys[j - 1]) == 0) free(op->keys[i]);
    else op->keys[j++] = op->keys[i];
  }
  op->nkeys = j;
  {
    const char **argv = malloc((op->nkeys + 1) * sizeof *argv);
    size_t *lens = malloc((op->nkeys + 1) * sizeof *lens);
    int rc = -1;
    if (argv && lens) {
      argv[0] = "MGET";
      lens[0] = 4;
      for (i = 0; i < op->nkeys; i++) {
        argv[i + 1] = op->keys[i];
        lens[i + 1] = strlen(op->keys[i]);
      }
      op->mget = 1;
      rc = mrpc__redis_send_argv(op->rr, on_reply, op, (int)op->nkeys + 1, argv, lens);
    }
    free(argv);
    free(lens);
    if (rc < 0) mrpc__redis_op_done(op, argv && lens ? MRPC_ECONNLOST : MRPC_ENOMEM);
  }
}

/* The reply callback of every operation sent. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
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
  else if (op->mget) list_values(op, rep);
  else list_keys(op, rep);
}
