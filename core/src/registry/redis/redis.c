/* registry_redis.c: the Redis registry backend, rpcx's layout over
 * hiredis's async API on the host's libuv loop: open and close, register,
 * update, unregister and the refresh that keeps instances alive, list.
 *
 * Layout: one string key per instance, "base/Service/tcp@host:port", whose
 * value is what rpcx's Redis plugin (libkv) writes: the JSON
 * {"Key":key,"Value":base64(metadata),"LastIndex":n}; plain values are
 * read too. Registration is SET key meta EX ttl, repeated every
 * TTL/3 so that a dead process's key expires; update is the same SET;
 * unregister is DEL. A list is SCAN MATCH "base/Service/" + "*" then MGET.
 *
 * The connections and the queue of operations are in registry_redis_conn.c,
 * watches in registry_redis_watch.c; what they share, and the lifetimes of
 * the structs, in registry_redis.h. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "registry/redis/redis.h"

#define CLOSE_GRACE_MS 1000  /* how long close waits for its DEL */
#define REDIS_MAX_KEYS 65536 /* instances one list may gather */

/* ---- lists --------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_entry(const void *a, const void *b) {
  const mrpc_reg_entry_t *x = a, *y = b;
  int c = strcmp(x->service, y->service);
  return c ? c : strcmp(x->addr, y->addr);
}

/* The MGET reply: the values of op->keys, NIL for keys gone meanwhile. */
void mrpc__redis_list_values(op_t *op, redisReply *rep) {
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
  mrpc__redis_list_complete(op, 0, l, n);
  for (i = 0; i < n; i++) {
    free(own[i]);
    free(own[op->nkeys + i]);
  }
  free(own);
  free(l);
  mrpc__redis_op_free(op);
}

/* A SCAN reply: gathers keys, then scans on or asks for their values. */
void mrpc__redis_list_keys(op_t *op, redisReply *rep) {
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
    if (mrpc__redis_send_op(op->rr, op) < 0) mrpc__redis_op_done(op, MRPC_ECONNLOST);
    return;
  }
  if (op->nkeys == 0) {
    mrpc__redis_list_complete(op, 0, NULL, 0);
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
      rc = mrpc__redis_send_argv(op->rr, mrpc__redis_on_reply, op, (int)op->nkeys + 1, argv, lens);
    }
    free(argv);
    free(lens);
    if (rc < 0) mrpc__redis_op_done(op, argv && lens ? MRPC_ECONNLOST : MRPC_ENOMEM);
  }
}

/* ---- the instances ------------------------------------------------------ */

static uint64_t third_ms(unsigned ttl) {
  uint64_t ms = (uint64_t)ttl * 1000 / 3;
  return ms ? ms : 1;
}

static void on_refresh(uv_timer_t *t);

static void arm_refresh(redis_t *rr) {
  inst_t *i;
  uint64_t now = uv_now(rr->r->loop), due = UINT64_MAX;
  for (i = rr->insts; i; i = i->next)
    if (i->due < due) due = i->due;
  if (due == UINT64_MAX) uv_timer_stop(&rr->refresh);
  else uv_timer_start(&rr->refresh, on_refresh, due > now ? due - now : 0, 0);
}

/* SETs every instance whose refresh is due (all of them when `all`). */
void mrpc__redis_refresh(redis_t *rr, int all) {
  uint64_t now = uv_now(rr->r->loop);
  inst_t *i;
  for (i = rr->insts; i; i = i->next) {
    if (!all && i->due > now) continue;
    i->due = now + third_ms(i->ttl);
    if (rr->cstate == C_UP && mrpc__redis_send_set(rr, NULL, NULL, i->key, i->meta, i->ttl) < 0)
      rr->cstate = C_DOWN;
  }
  arm_refresh(rr);
}

static void on_refresh(uv_timer_t *t) {
  redis_t *rr = t->data;
  if (!rr->closing) mrpc__redis_refresh(rr, 0);
}


static inst_t *inst_find(redis_t *rr, const char *key, inst_t ***pp) {
  inst_t **p;
  for (p = &rr->insts; *p; p = &(*p)->next)
    if (strcmp((*p)->key, key) == 0) break;
  if (pp) *pp = p;
  return *p;
}

static void inst_free(inst_t *i) {
  free(i->key);
  free(i->meta);
  free(i);
}

/* ---- the backend ops ---------------------------------------------------- */

static int redis_reg(mrpc_registry_t *r, const char *service, const char *addr,
                     const char *meta, unsigned ttl, mrpc_reg_cb cb, void *udata) {
  redis_t *rr = r->backend;
  char key[KEY_MAX], *m;
  inst_t *i;
  op_t *op;
  if (rr->closing) return MRPC_ECLOSED;
  if (mrpc__reg_key(r, service, addr, key, sizeof key) < 0) return MRPC_EINVAL;
  if (!(op = mrpc__redis_op_new(rr, OP_SET, key, meta))) return MRPC_ENOMEM;
  if ((i = inst_find(rr, key, NULL))) {
    if (!(m = strdup(meta))) {
      mrpc__redis_op_free(op);
      return MRPC_ENOMEM;
    }
    free(i->meta);
    i->meta = m;
  } else {
    if (!(i = calloc(1, sizeof *i)) || !(i->key = strdup(key)) || !(i->meta = strdup(meta))) {
      if (i) inst_free(i);
      mrpc__redis_op_free(op);
      return MRPC_ENOMEM;
    }
    i->next = rr->insts;
    rr->insts = i;
  }
  i->ttl = ttl;
  i->due = uv_now(r->loop) + third_ms(ttl);
  op->ttl = ttl;
  op->cb = cb;
  op->udata = udata;
  mrpc__redis_submit(rr, op);
  arm_refresh(rr);
  return 0;
}

/* Only an instance this registry registered can be updated: the SET must
 * carry its TTL. */
static int redis_update(mrpc_registry_t *r, const char *service, const char *addr,
                        const char *meta, mrpc_reg_cb cb, void *udata) {
  redis_t *rr = r->backend;
  char key[KEY_MAX], *m;
  inst_t *i;
  op_t *op;
  if (rr->closing) return MRPC_ECLOSED;
  if (mrpc__reg_key(r, service, addr, key, sizeof key) < 0) return MRPC_EINVAL;
  if (!(i = inst_find(rr, key, NULL))) return MRPC_EINVAL;
  if (!(op = mrpc__redis_op_new(rr, OP_SET, key, meta)) || !(m = strdup(meta))) {
    if (op) mrpc__redis_op_free(op);
    return MRPC_ENOMEM;
  }
  free(i->meta);
  i->meta = m;
  op->ttl = i->ttl;
  op->cb = cb;
  op->udata = udata;
  mrpc__redis_submit(rr, op);
  return 0;
}

static int redis_unreg(mrpc_registry_t *r, const char *service, const char *addr,
                       mrpc_reg_cb cb, void *udata) {
  redis_t *rr = r->backend;
  char key[KEY_MAX];
  inst_t *i, **p;
  op_t *op;
  if (rr->closing) return MRPC_ECLOSED;
  if (mrpc__reg_key(r, service, addr, key, sizeof key) < 0) return MRPC_EINVAL;
  if (!(op = mrpc__redis_op_new(rr, OP_DEL, key, NULL))) return MRPC_ENOMEM;
  if ((i = inst_find(rr, key, &p))) {
    *p = i->next;
    inst_free(i);
    arm_refresh(rr);
  }
  op->cb = cb;
  op->udata = udata;
  mrpc__redis_submit(rr, op);
  return 0;
}

/* `s` with glob metacharacters escaped, `tail` appended. */
char *mrpc__redis_glob_escape(const char *head, const char *s, const char *tail) {
  size_t n = strlen(head) + 2 * strlen(s) + strlen(tail) + 1;
  char *out = malloc(n), *o;
  if (!out) return NULL;
  o = out + strlen(head);
  memcpy(out, head, strlen(head));
  for (; *s; s++) {
    if (strchr("*?[]\\", *s)) *o++ = '\\';
    *o++ = *s;
  }
  strcpy(o, tail);
  return out;
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

static int redis_list(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                      void *udata) {
  redis_t *rr = r->backend;
  op_t *op;
  if (rr->closing) return MRPC_ECLOSED;
  if (!(op = mrpc__redis_list_op(rr, service))) return MRPC_ENOMEM;
  op->lcb = cb;
  op->udata = udata;
  mrpc__redis_submit(rr, op);
  return 0;
}

/* ---- open and close ----------------------------------------------------- */

static void on_rr_handle_closed(uv_handle_t *h) {
  redis_t *rr = h->data;
  rr->live--;
  mrpc__redis_check_done(rr);
}

/* Once closing: closes the timer when nothing needs it any more, frees
 * the registry when every handle is closed. */
void mrpc__redis_check_done(redis_t *rr) {
  mrpc_registry_t *r = rr->r;
  mrpc_reg_cb cb;
  void *ud;
  if (!rr->closing || rr->done) return;
  if (!rr->timer_closing && !rr->cmd && rr->nwatch == 0) {
    rr->timer_closing = 1;
    uv_close((uv_handle_t *)&rr->timer, on_rr_handle_closed);
  }
  if (rr->live > 0 || rr->nwatch > 0) return;
  rr->done = 1;
  cb = rr->close_cb;
  ud = rr->close_udata;
  r->backend = NULL;
  free(rr);
  if (cb) cb(0, ud);
}

static void on_close_guard(uv_timer_t *t) {
  redis_t *rr = t->data;
  if (rr->cmd && rr->cmd->ac) redisAsyncFree(rr->cmd->ac);
}

static void on_close_step(uv_timer_t *t) {
  redis_t *rr = t->data;
  op_t *q = rr->qhead;
  inst_t *i;
  rr->qhead = rr->qtail = NULL;
  mrpc__redis_fail_ops(q, MRPC_ECLOSED);
  if (rr->cmd && rr->cmd->ac) {
    if (rr->cstate == C_UP) {
      size_t n = 0, k = 1;
      const char **argv;
      size_t *lens;
      for (i = rr->insts; i; i = i->next) n++;
      argv = malloc((n + 1) * sizeof *argv);
      lens = malloc((n + 1) * sizeof *lens);
      if (n && argv && lens) {
        argv[0] = "DEL";
        lens[0] = 3;
        for (i = rr->insts; i; i = i->next, k++) {
          argv[k] = i->key;
          lens[k] = strlen(i->key);
        }
        mrpc__redis_send_argv(rr, NULL, NULL, (int)k, argv, lens);
      }
      free(argv);
      free(lens);
      /* Waits for the replies due (the DEL, a list under way), then
       * closes; the guard frees it if the server does not answer. */
      uv_timer_start(&rr->timer, on_close_guard, CLOSE_GRACE_MS, 0);
      redisAsyncDisconnect(rr->cmd->ac);
    } else {
      redisAsyncFree(rr->cmd->ac);
    }
  }
  while ((i = rr->insts)) {
    rr->insts = i->next;
    inst_free(i);
  }
  mrpc__redis_check_done(rr);
}

static void redis_close(mrpc_registry_t *r, mrpc_reg_cb cb, void *udata) {
  redis_t *rr = r->backend;
  rr->closing = 1;
  rr->close_cb = cb;
  rr->close_udata = udata;
  while (rr->watches) mrpc__redis_unwatch(&rr->watches->head);
  uv_close((uv_handle_t *)&rr->refresh, on_rr_handle_closed);
  uv_timer_start(&rr->timer, on_close_step, 0, 0);
}

static int redis_open(mrpc_registry_t *r, const char *host, int port) {
  redis_t *rr = calloc(1, sizeof *rr);
  if (!rr) return MRPC_ENOMEM;
  if (strlen(host) >= sizeof rr->host) {
    free(rr);
    return MRPC_EADDR;
  }
  strcpy(rr->host, host);
  rr->port = port;
  rr->r = r;
  uv_timer_init(r->loop, &rr->timer);
  uv_timer_init(r->loop, &rr->refresh);
  rr->timer.data = rr->refresh.data = rr;
  rr->live = 2;
  r->backend = rr;
  return 0;
}

const mrpc_registry_ops_t mrpc__redis_ops = {
  "redis", redis_open, redis_reg, redis_update, redis_unreg,
  redis_list, mrpc__redis_watch, mrpc__redis_unwatch, redis_close,
};
