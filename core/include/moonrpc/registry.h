/* moonrpc/registry.h: the service registry, one interface over several
 * backends (etcd v3 through its JSON gateway, Redis, and the embedded
 * moonrpc registry).
 *
 * Layout, shared with Go rpcx servers: one key per instance,
 * `basePath/Service/tcp@host:port`, whose value is the instance's metadata
 * as a URL query string ("weight=10&group=a&state=active"). An instance is
 * registered under a lease with a TTL that the registry keeps alive until
 * it is unregistered or the registry is closed; an instance whose process
 * dies disappears when its lease expires.
 *
 * Every operation completes exactly once through its callback, never from
 * inside the call that started it; a call that fails at once returns a
 * negative code and never calls back. Strings passed in are copied.
 * Everything runs on the loop the host hands in. */
#ifndef MOONRPC_REGISTRY_H
#define MOONRPC_REGISTRY_H

#include <uv.h>
#include "common.h"
#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrpc_registry_s mrpc_registry_t;
typedef struct mrpc_watch_s mrpc_watch_t;

/* One instance of a service. */
typedef struct mrpc_reg_entry_s {
  const char *service;
  const char *addr; /* "tcp@127.0.0.1:8972" */
  const char *meta; /* "weight=10&group=a" */
} mrpc_reg_entry_t;

/* Completion of register / update / unregister / close: status 0 or a
 * negative code. */
typedef void (*mrpc_reg_cb)(int status, void *udata);

/* The instances of a service. `list` and its strings are valid only during
 * the callback. status < 0: the list could not be read (n is 0). */
typedef void (*mrpc_reg_list_cb)(int status, const mrpc_reg_entry_t *list,
                                 size_t n, void *udata);

/* Opens a registry from a URL: "etcd://127.0.0.1:2379/rpcx_test" (the path
 * is the base path), "redis://127.0.0.1:6379/rpcx_test". Nothing is
 * connected yet. 0, MRPC_EADDR (bad or unknown URL) or MRPC_ENOMEM. */
int mrpc_registry_open(uv_loop_t *loop, const char *url, mrpc_registry_t **out);

/* The base path the registry was opened with (e.g. "rpcx_test"). */
const char *mrpc_registry_base(const mrpc_registry_t *r);

/* Registers `addr` for `service` with `meta`, under a lease of `ttl_s`
 * seconds that the registry renews (at a third of the TTL) until
 * unregister or close. `cb` reports the first registration. If the backend
 * becomes unreachable the registry keeps retrying, with backoff, and
 * registers again once it is back. */
int mrpc_registry_register(mrpc_registry_t *r, const char *service,
                           const char *addr, const char *meta, unsigned ttl_s,
                           mrpc_reg_cb cb, void *udata);

/* Replaces the metadata of a registered instance. */
int mrpc_registry_update(mrpc_registry_t *r, const char *service,
                         const char *addr, const char *meta, mrpc_reg_cb cb,
                         void *udata);

/* Removes an instance now and stops renewing its lease. */
int mrpc_registry_unregister(mrpc_registry_t *r, const char *service,
                             const char *addr, mrpc_reg_cb cb, void *udata);

/* Reads the current instances of `service`; "" reads every instance of
 * every service under the base path (each entry's `service` tells). */
int mrpc_registry_list(mrpc_registry_t *r, const char *service,
                       mrpc_reg_list_cb cb, void *udata);

/* Watches `service`: `cb` gets the whole current list first, then again
 * after every change (status 0), for as long as the watch lives. When the
 * backend goes away the watch reports nothing (the caller keeps its last
 * list) and re-establishes itself with backoff, then reports the list
 * again. Stop it with mrpc_registry_unwatch; `cb` is not called after. */
int mrpc_registry_watch(mrpc_registry_t *r, const char *service,
                        mrpc_reg_list_cb cb, void *udata, mrpc_watch_t **out);
void mrpc_registry_unwatch(mrpc_watch_t *w);

/* Unregisters every instance this registry registered (best effort, as a
 * graceful shutdown should), stops watches, closes connections, frees the
 * registry, then calls `cb` (may be NULL) with status 0. */
void mrpc_registry_close(mrpc_registry_t *r, mrpc_reg_cb cb, void *udata);

/* ---- the embedded registry (moonrpc://) ------------------------------------
 *
 * A registry that is itself a moonrpc service, named "Registry", added to a
 * server the host owns; `moonrpc registry --listen ADDR` runs one. It keeps
 * rpcx's layout in memory. Every instance holds a lease of its own TTL;
 * the instance renews it with KeepAlive calls (its heartbeats), and an
 * entry whose lease is not renewed within the TTL is removed. Watchers are
 * told of every change by server push on the connection they watched
 * from. The moonrpc:// backend of mrpc_registry_open is its client.
 *
 * The protocol: JSON or msgpack payloads (serialize type 1 or 3, as the
 * caller chooses; any rpcx client can call it, Go's default codec too). "base" is the base path (default "rpcx"); "service" "" in List and
 * Watch means every service under base.
 *   Register   {base, service, addr, meta, ttl}  -> {lease}
 *   Update     {base, service, addr, meta}       -> {}
 *   Unregister {base, service, addr}             -> {}
 *   KeepAlive  {leases: [...], watches: [...]}   -> {expired: [...], lost: [...]}
 *              (renews the leases; names the unknown ones, and the watches
 *              not bound to this connection, so the caller registers or
 *              watches again)
 *   List       {base, service}                   -> {instances: [{service, addr, meta}]}
 *   Watch      {base, service}                   -> {watch, instances}
 *              then pushes Registry.Changed {watch, instances} on each change
 *   Unwatch    {watch}                           -> {}
 * Errors are rpcx errors ("registry: ..."). Ids are strings that differ
 * between registry processes, so a restarted registry never mistakes an
 * old lease for a new one. */
typedef struct mrpc_regsrv_s mrpc_regsrv_t;

typedef struct mrpc_regsrv_opts_s {
  unsigned max_entries; /* 0: 100000 instances */
  unsigned max_watches; /* 0: 10000 watches */
  unsigned max_ttl_s;   /* 0: 86400 s */
} mrpc_regsrv_opts_t;

/* Adds the Registry service to `srv` (on `loop`). `opts` may be NULL.
 * 0, MRPC_ENOMEM or MRPC_EINVAL. */
int mrpc_regsrv_new(uv_loop_t *loop, mrpc_server_t *srv,
                    const mrpc_regsrv_opts_t *opts, mrpc_regsrv_t **out);

/* Number of instances registered / watches open. */
size_t mrpc_regsrv_count(const mrpc_regsrv_t *r);
size_t mrpc_regsrv_watchers(const mrpc_regsrv_t *r);

/* Removes the service from its server, forgets every entry and watch, and
 * frees the registry, then calls `cb` (may be NULL; never from inside this
 * call). Call it before closing the server. */
void mrpc_regsrv_close(mrpc_regsrv_t *r, mrpc_reg_cb cb, void *udata);

/* ---- for backends ------------------------------------------------------- */

/* What a backend implements. The generic layer (registry.c) parses the
 * URL, builds keys, and dispatches to these. */
typedef struct mrpc_registry_ops_s {
  const char *scheme; /* "etcd", "redis", "moonrpc" */
  int (*open)(mrpc_registry_t *r, const char *host, int port);
  int (*reg)(mrpc_registry_t *r, const char *service, const char *addr,
             const char *meta, unsigned ttl_s, mrpc_reg_cb cb, void *udata);
  int (*update)(mrpc_registry_t *r, const char *service, const char *addr,
                const char *meta, mrpc_reg_cb cb, void *udata);
  int (*unreg)(mrpc_registry_t *r, const char *service, const char *addr,
               mrpc_reg_cb cb, void *udata);
  int (*list)(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
              void *udata);
  int (*watch)(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
               void *udata, mrpc_watch_t **out);
  void (*unwatch)(mrpc_watch_t *w);
  void (*close)(mrpc_registry_t *r, mrpc_reg_cb cb, void *udata);
} mrpc_registry_ops_t;

/* The common head of every registry; a backend's own struct begins with
 * it. */
struct mrpc_registry_s {
  const mrpc_registry_ops_t *ops;
  uv_loop_t *loop;
  char base[256]; /* without leading or trailing '/' */
  void *backend;  /* the backend's state */
  mrpc_reg_cb close_cb; /* the user's, kept by registry.c during close */
  void *close_udata;
};

/* The watch head; a backend's watch struct begins with it. */
struct mrpc_watch_s {
  mrpc_registry_t *reg;
};

#ifdef __cplusplus
}
#endif
#endif
