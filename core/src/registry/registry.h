/* registry/registry.h (internal): the service registry, the only header
 * other folders include from registry/. One interface (the ops table and
 * the common heads in moonrpc/registry.h) with three backends below it:
 * etcd/ (etcd v3 through its JSON gateway on libcurl), redis/ (hiredis on
 * the loop) and embedded/ (the moonrpc:// client, and the Registry service
 * that a moonrpc server hosts). registry.c parses URLs and dispatches to a
 * backend; the backends call down into key.c, base/, codec/, client/ and
 * server/, never up into registry.c. */
#ifndef MOONRPC_REGISTRY_INT_H
#define MOONRPC_REGISTRY_INT_H

#include "moonrpc/registry.h"

/* The backends' ops tables (etcd/etcd.c, redis/redis.c, embedded/client.c),
 * read by registry.c's dispatch only. */
extern const mrpc_registry_ops_t mrpc__etcd_ops;
extern const mrpc_registry_ops_t mrpc__redis_ops;
extern const mrpc_registry_ops_t mrpc__moonrpc_ops;

/* key.c. Writes "base/service/addr" (or the prefix "base/service/" when addr is
 * NULL) into buf. 0 or MRPC_EINVAL when it does not fit. */
int mrpc__reg_key(const mrpc_registry_t *r, const char *service, const char *addr,
                  char *buf, size_t len);

#endif
