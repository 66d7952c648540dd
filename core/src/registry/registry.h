/* registry_int.h (internal): what the registry backends share with
 * registry.c. */
#ifndef MOONRPC_REGISTRY_INT_H
#define MOONRPC_REGISTRY_INT_H

#include "moonrpc/registry.h"

extern const mrpc_registry_ops_t mrpc__etcd_ops;
extern const mrpc_registry_ops_t mrpc__redis_ops;
extern const mrpc_registry_ops_t mrpc__moonrpc_ops;

/* Writes "base/service/addr" (or the prefix "base/service/" when addr is
 * NULL) into buf. 0 or MRPC_EINVAL when it does not fit. */
int mrpc__reg_key(const mrpc_registry_t *r, const char *service, const char *addr,
                  char *buf, size_t len);

#endif
