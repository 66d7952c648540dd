/* key.c: rpcx's registry key layout, "basePath/Service/network@host:port",
 * which every backend writes and reads. The lowest file of registry/: it
 * calls only libc. */
#include <stdio.h>
#include "registry/registry.h"

int mrpc__reg_key(const mrpc_registry_t *r, const char *service, const char *addr,
                  char *buf, size_t len) {
  int n = addr ? snprintf(buf, len, "%s/%s/%s", r->base, service, addr)
          : *service ? snprintf(buf, len, "%s/%s/", r->base, service)
                     : snprintf(buf, len, "%s/", r->base); /* every service */
  return (n < 0 || (size_t)n >= len) ? MRPC_EINVAL : 0;
}
