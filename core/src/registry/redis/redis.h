/* registry_redis.h (internal): what the Redis registry backend's files
 * share: its structs (the registry, a connection, an instance, an
 * operation, a watch) and the prototypes of the helpers one file calls in
 * another.
 *
 *   registry_redis.c        open/close, register/update/unregister and
 *                           their refresh, list
 *   registry_redis_conn.c   the hiredis connection layer on libuv: the poll
 *                           adapter, connect/reconnect with backoff, the
 *                           command queue
 *   registry_redis_watch.c  keyspace-notification watches
 *
 * Lifetimes. A connection (conn_t) is freed in its poll handle's close
 * callback; a watch when its timer is closed, its connection gone and no
 * list of its is in flight; the registry when all of those handles closed.
 * Nothing calls back from inside the call that started it: the first
 * connection attempt and the close step run from timers. */
#ifndef MOONRPC_REGISTRY_REDIS_H
#define MOONRPC_REGISTRY_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include "base/base.h"
#include "registry/registry.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000
#define KEY_MAX 1024

typedef struct redis_s redis_t;
typedef struct watch_s watch_t;

/* One hiredis async context and the poll handle that drives it. */
typedef struct conn_s {
  uv_poll_t poll;
  redisAsyncContext *ac; /* NULL once hiredis freed it (cleanup hook) */
  int events;
  int up;                /* the connection was established */
  uint64_t up_at;        /* when, uv_now ms */
  redis_t *rr;
  watch_t *w;            /* the watch it subscribes for; NULL: commands */
} conn_t;

/* An instance this registry keeps registered. */
typedef struct inst_s {
  struct inst_s *next;
  char *key, *meta;
  unsigned ttl;
  uint64_t due; /* next refresh, uv_now ms */
} inst_t;

enum { OP_SET, OP_DEL, OP_LIST };

/* One operation: queued while the command connection is not up, then
 * owned by hiredis (the reply callback) until it completes. */
typedef struct op_s {
  struct op_s *next;
  redis_t *rr;
  int kind, mget; /* mget: a LIST past its SCAN */
  char *key, *meta;
  unsigned ttl;
  mrpc_reg_cb cb;
  mrpc_reg_list_cb lcb;
  void *udata;
  watch_t *w;        /* a LIST for this watch (it holds a ref) */
  char *service;     /* LIST */
  char *match;
  size_t plen;       /* length of "base/service/" */
  char cursor[32];
  char **keys;
  size_t nkeys, cap;
} op_t;

struct watch_s {
  mrpc_watch_t head;
  watch_t *next; /* in rr->watches while alive */
  redis_t *rr;
  char *service, *pattern;
  mrpc_reg_list_cb cb;
  void *udata;
  conn_t *conn;
  uv_timer_t timer; /* reconnect, or retry a failed list */
  unsigned backoff;
  int refs;         /* the timer, the connection, a list in flight */
  int dead, subscribed, listing, dirty, force, reported;
  char *last;       /* the last reported list, flattened */
  size_t last_len;
};

enum { C_IDLE, C_WAIT, C_CONNECTING, C_UP, C_DOWN };

/* A lost connection is retried at once only if it had lived a while; one
 * that a peer accepts and drops (maxclients, a proxy without a backend)
 * backs off like a refused one instead of being reopened in a loop. */
#define LONG_LIVED_MS BACKOFF_MAX_MS

/* The metadata in a libkv value (rpcx's Redis plugin: JSON with "Value"
 * in base64), fresh; NULL when `v` is not one (a plain value). */
char *mrpc__redis_libkv_meta(const char *v, size_t len);

struct redis_s {
  mrpc_registry_t *r;
  char host[256];
  int port;
  conn_t *cmd;
  int cstate;        /* C_*: C_DOWN is a context that hiredis is ending */
  unsigned backoff;
  uv_timer_t timer;  /* reconnects; once closing, the close step and guard */
  uv_timer_t refresh;
  inst_t *insts;
  op_t *qhead, *qtail;
  watch_t *watches;
  int nwatch;        /* watch structs not yet freed */
  int live;          /* open handles */
  int closing, timer_closing, done;
  mrpc_reg_cb close_cb;
  void *close_udata;
};


/* ---- registry_redis_conn.c: connections and the command queue ---------- */

/* Starts a connection; NULL when it failed at once. */
conn_t *mrpc__redis_conn_open(redis_t *rr, watch_t *w, redisConnectCallback *on_connect);

/* A new operation with copies of `key` and `meta` (either may be NULL). */
op_t *mrpc__redis_op_new(redis_t *rr, int kind, const char *key, const char *meta);
void mrpc__redis_op_free(op_t *op);
/* Ends an operation with `status` (a LIST with no entries) and frees it. */
void mrpc__redis_op_done(op_t *op, int status);
/* Ends every operation of the list `q` with `status`. */
void mrpc__redis_fail_ops(op_t *q, int status);
/* Reports a LIST's result to its caller or its watch; does not free it. */
void mrpc__redis_list_complete(op_t *op, int status, const mrpc_reg_entry_t *l, size_t n);

/* Send on the command connection; -1 when it is not there or hiredis
 * refused (it is then ending the connection). */
int mrpc__redis_send_argv(redis_t *rr, redisCallbackFn *fn, void *priv, int argc,
                          const char **argv, const size_t *lens);
int mrpc__redis_send_set(redis_t *rr, redisCallbackFn *fn, void *priv, const char *key,
                         const char *meta, unsigned ttl);
int mrpc__redis_send_op(redis_t *rr, op_t *op);
/* Sends `op` now, or queues it for the next connection. Never calls back. */
void mrpc__redis_submit(redis_t *rr, op_t *op);
/* The reply callback of every operation sent. */
void mrpc__redis_on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* ---- registry_redis.c: the backend, instances, lists ------------------- */

/* SETs every instance whose refresh is due (all of them when `all`). */
void mrpc__redis_refresh(redis_t *rr, int all);
/* Once closing: frees the registry when every handle is closed. */
void mrpc__redis_check_done(redis_t *rr);
/* `head`, then `s` with glob metacharacters escaped, then `tail`. */
char *mrpc__redis_glob_escape(const char *head, const char *s, const char *tail);
/* A LIST operation of `service`; NULL on failure. */
op_t *mrpc__redis_list_op(redis_t *rr, const char *service);
/* A LIST's SCAN and MGET replies. */
void mrpc__redis_list_keys(op_t *op, redisReply *rep);
void mrpc__redis_list_values(op_t *op, redisReply *rep);

/* ---- registry_redis_watch.c: watches ----------------------------------- */

int mrpc__redis_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                      void *udata, mrpc_watch_t **out);
void mrpc__redis_unwatch(mrpc_watch_t *mw);
/* The watch's connection ended (hiredis freed it). */
void mrpc__redis_watch_conn_gone(watch_t *w, conn_t *c);
/* A list of the watch's completed. */
void mrpc__redis_watch_listed(watch_t *w, int status, const mrpc_reg_entry_t *l, size_t n);

#endif
