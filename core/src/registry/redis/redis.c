/* redis.c: the Redis registry backend's ops table, on top of the other
 * files: open and close, the instances this registry keeps registered and
 * the refresh that keeps them alive, register, update, unregister, list.
 *
 * Layout: one string key per instance, "base/Service/tcp@host:port", whose
 * value is what rpcx's Redis plugin (libkv) writes: the JSON
 * {"Key":key,"Value":base64(metadata),"LastIndex":n}; plain values are
 * read too. Registration is SET key meta EX ttl, repeated every
 * TTL/3 so that a dead process's key expires; update is the same SET;
 * unregister is DEL. A list is SCAN MATCH "base/Service/" + "*" then MGET.
 *
 * The operations are in redis_ops.c, the connections in redis_conn.c,
 * watches in redis_watch.c, the value format in redis_format.c; what they
 * share, and the lifetimes of the structs, in redis.h. This file hands
 * the command connection the two hooks it reports through (on_cmd_up,
 * on_cmd_refused). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "registry/redis/redis.h"

#define CLOSE_GRACE_MS 1000  /* how long close waits for its DEL */

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
static void refresh(redis_t *rr, int all) {
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
  if (!rr->closing) refresh(rr, 0);
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

/* ---- what the command connection reports ------------------------------ */

/* It is up: everything registered is SET again, then what waited is sent. */
static void on_cmd_up(redis_t *rr) {
  refresh(rr, 1);
  mrpc__redis_flush_queued(rr);
}

/* An attempt failed: what waited for it fails too. */
static void on_cmd_refused(redis_t *rr) { mrpc__redis_fail_queued(rr, UV_ECONNREFUSED); }

/* ---- open and close ----------------------------------------------------- */

static void on_close_guard(uv_timer_t *t) {
  redis_t *rr = t->data;
  if (rr->cmd && rr->cmd->ac) redisAsyncFree(rr->cmd->ac);
}

static void on_close_step(uv_timer_t *t) {
  redis_t *rr = t->data;
  inst_t *i;
  mrpc__redis_fail_queued(rr, MRPC_ECLOSED);
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
  uv_close((uv_handle_t *)&rr->refresh, mrpc__redis_handle_closed);
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
  rr->on_cmd_up = on_cmd_up;
  rr->on_cmd_refused = on_cmd_refused;
  r->backend = rr;
  return 0;
}

const mrpc_registry_ops_t mrpc__redis_ops = {
  "redis", redis_open, redis_reg, redis_update, redis_unreg,
  redis_list, mrpc__redis_watch, mrpc__redis_unwatch, redis_close,
};
