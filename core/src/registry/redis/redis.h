/* registry/redis/redis.h (internal): the Redis registry backend, rpcx's
 * layout in a Redis server reached with hiredis's async API on the host's
 * libuv loop. It registers instances (SET key libkv-value EX ttl, renewed
 * every TTL/3), updates and unregisters them, lists a service (SCAN then
 * MGET) and watches one (keyspace notifications). It may call base/ (b64,
 * strndup, logging), registry/key.c (mrpc__reg_key), hiredis, cJSON and
 * libuv; nothing else calls into it but registry.c, through
 * mrpc__redis_ops.
 *
 * Its files, each calling only the ones listed below it:
 *
 *   redis.c         the ops table: open/close, the instances and their
 *                   refresh, register/update/unregister, list
 *   redis_watch.c   keyspace-notification watches
 *   redis_ops.c     operations on the command connection: their queue,
 *                   SET/DEL, a list's SCAN and MGET
 *   redis_conn.c    a hiredis context on our libuv poll adapter; the
 *                   command connection's connect/reconnect with backoff;
 *                   the registry's handle count and final free
 *   redis_format.c  pure text formats: the libkv value, glob patterns
 *
 * A lower file reports upward only through callbacks it was handed: a
 * connection through its `gone` hook, the command connection through
 * rr->on_cmd_up / rr->on_cmd_refused (set by redis.c), an operation through
 * its cb / lcb.
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

/* A lost connection is retried at once only if it had lived a while; one
 * that a peer accepts and drops (maxclients, a proxy without a backend)
 * backs off like a refused one instead of being reopened in a loop. */
#define LONG_LIVED_MS BACKOFF_MAX_MS

typedef struct redis_s redis_t;
typedef struct watch_s watch_t;
typedef struct conn_s conn_t;

/* One hiredis async context and the poll handle that drives it. Owned by
 * redis_conn.c: freed in the poll handle's close callback, which runs
 * after hiredis freed the context and `gone` was called. */
struct conn_s {
  uv_poll_t poll;
  redisAsyncContext *ac; /* hiredis owns and frees it; NULL once it did */
  int events;
  int up;                /* the connection was established */
  uint64_t up_at;        /* when, uv_now ms */
  redis_t *rr;           /* not owned */
  void *owner;           /* not owned: the watch, or rr for the command one */
  /* hiredis freed the context (every callback of it has run). */
  void (*gone)(conn_t *c);
};

/* An instance this registry keeps registered; in rr->insts, freed by
 * redis.c on unregister or close. */
typedef struct inst_s {
  struct inst_s *next;
  char *key, *meta; /* owned */
  unsigned ttl;
  uint64_t due; /* next refresh, uv_now ms */
} inst_t;

enum { OP_SET, OP_DEL, OP_LIST };

/* One operation: queued (rr->qhead) while the command connection is not
 * up, then owned by hiredis (the reply callback) until it completes; it is
 * freed by whoever ends it (mrpc__redis_op_done, or the list code after
 * reporting). */
typedef struct op_s {
  struct op_s *next;
  redis_t *rr;    /* not owned */
  int kind, mget; /* mget: a LIST past its SCAN */
  char *key, *meta; /* owned */
  unsigned ttl;
  mrpc_reg_cb cb;        /* SET, DEL */
  mrpc_reg_list_cb lcb;  /* LIST: the caller, or a watch's */
  void *udata;           /* not owned; a watch holds a ref for its list */
  char *service;     /* LIST, owned */
  char *match;       /* LIST's SCAN pattern, owned */
  size_t plen;       /* length of "base/service/" */
  char cursor[32];
  char **keys;       /* owned, each key too */
  size_t nkeys, cap;
} op_t;

/* A watch; in rr->watches while alive. Reference counted (refs): the
 * timer, the connection and a list in flight each hold one; the last
 * unref in redis_watch.c frees it. */
struct watch_s {
  mrpc_watch_t head;
  watch_t *next;
  redis_t *rr;             /* not owned */
  char *service, *pattern; /* owned */
  mrpc_reg_list_cb cb;
  void *udata;             /* not owned */
  conn_t *conn;            /* its subscribing connection; owned by redis_conn.c */
  uv_timer_t timer;        /* reconnect, or retry a failed list */
  unsigned backoff;
  int refs;
  int dead, subscribed, listing, dirty, force, reported;
  char *last;              /* the last reported list, flattened; owned */
  size_t last_len;
};

enum { C_IDLE, C_WAIT, C_CONNECTING, C_UP, C_DOWN };

/* The registry, r->backend. Freed by mrpc__redis_check_done once closing
 * and every handle of the backend is closed. */
struct redis_s {
  mrpc_registry_t *r; /* not owned */
  char host[256];
  int port;
  conn_t *cmd;       /* the command connection; owned by redis_conn.c */
  int cstate;        /* C_*: C_DOWN is a context that hiredis is ending */
  unsigned backoff;
  uv_timer_t timer;  /* reconnects; once closing, the close step and guard */
  uv_timer_t refresh;
  inst_t *insts;     /* owned (redis.c) */
  op_t *qhead, *qtail; /* owned: operations waiting for the connection */
  watch_t *watches;  /* not owned: each watch frees itself */
  int nwatch;        /* watch structs not yet freed */
  int live;          /* open handles */
  int closing, timer_closing, done;
  mrpc_reg_cb close_cb;
  void *close_udata;
  /* How the command connection reports upward (set by redis.c at open):
   * it is up (not while closing); an attempt failed (not while closing).
   * It reads rr->insts and rr->qhead to decide whether to reconnect. */
  void (*on_cmd_up)(redis_t *rr);
  void (*on_cmd_refused)(redis_t *rr);
};

/* ---- redis_format.c: pure, no I/O -------------------------------------- */

/* The libkv value of `key` (rpcx's Redis plugin: the JSON of a KVPair,
 * {"Key":key,"Value":base64(meta),"LastIndex":index}); free it with
 * cJSON_free. NULL when out of memory. */
char *mrpc__redis_libkv_value(const char *key, const char *meta, uint64_t index);
/* The metadata in a libkv value, fresh; NULL when `v` is not one (a plain
 * value). */
char *mrpc__redis_libkv_meta(const char *v, size_t len);
/* `head`, then `s` with glob metacharacters escaped, then `tail`; fresh. */
char *mrpc__redis_glob_escape(const char *head, const char *s, const char *tail);

/* ---- redis_conn.c: connections, the command connection, lifetime ------- */

/* Starts a connection for `owner`; NULL when it failed at once. */
conn_t *mrpc__redis_conn_open(redis_t *rr, void *owner, redisConnectCallback *on_connect,
                              void (*gone)(conn_t *c));
/* The connection had lived long enough to be retried at once. */
int mrpc__redis_conn_lived(const conn_t *c);
/* The next reconnect delay after `backoff`: 0.2 s doubling to 5 s. */
unsigned mrpc__redis_backoff_next(unsigned backoff);
/* Connects the command connection when nothing is under way (from a
 * timer). */
void mrpc__redis_cmd_kick(redis_t *rr);
/* The close callback of a handle of rr's own (h->data is rr). */
void mrpc__redis_handle_closed(uv_handle_t *h);
/* Once closing: closes the timer when nothing needs it any more, frees
 * the registry when every handle is closed. */
void mrpc__redis_check_done(redis_t *rr);

/* ---- redis_ops.c: operations ------------------------------------------- */

/* A new operation with copies of `key` and `meta` (either may be NULL). */
op_t *mrpc__redis_op_new(redis_t *rr, int kind, const char *key, const char *meta);
void mrpc__redis_op_free(op_t *op);
/* Ends an operation with `status` (a LIST with no entries) and frees it. */
void mrpc__redis_op_done(op_t *op, int status);
/* Ends every queued operation with `status`; ones they start queue anew. */
void mrpc__redis_fail_queued(redis_t *rr, int status);
/* Sends the queued operations on the connection that just came up. */
void mrpc__redis_flush_queued(redis_t *rr);
/* A LIST operation of `service`; NULL on failure. */
op_t *mrpc__redis_list_op(redis_t *rr, const char *service);

/* Send on the command connection; -1 when it is not there or hiredis
 * refused (it is then ending the connection). */
int mrpc__redis_send_argv(redis_t *rr, redisCallbackFn *fn, void *priv, int argc,
                          const char **argv, const size_t *lens);
int mrpc__redis_send_set(redis_t *rr, redisCallbackFn *fn, void *priv, const char *key,
                         const char *meta, unsigned ttl);
/* Sends `op` now, or queues it for the next connection. Never calls back. */
void mrpc__redis_submit(redis_t *rr, op_t *op);

/* ---- redis_watch.c: watches -------------------------------------------- */

int mrpc__redis_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                      void *udata, mrpc_watch_t **out);
void mrpc__redis_unwatch(mrpc_watch_t *mw);

#endif
