/* registry/embedded/embedded.h (internal): the embedded registry, a
 * moonrpc:// registry with no outside server. Two halves that share only the
 * protocol (documented in moonrpc/registry.h) and never call each other:
 *   regsrv.c  the "Registry" service a moonrpc server hosts (mrpc_regsrv_*):
 *             entries in memory under TTL leases, watches by server push;
 *             it calls server/ (the public request and connection API),
 *             codec/ (JSON and msgpack through cJSON) and base/.
 *   client.c  the moonrpc:// backend (mrpc__moonrpc_ops) over one client
 *             connection; it calls client/ (the public client API),
 *             registry/key.c and base/, and reports to registry.c only
 *             through the callbacks it was handed.
 * Nothing outside registry/ includes this header. */
#ifndef MOONRPC_REGISTRY_EMBEDDED_H
#define MOONRPC_REGISTRY_EMBEDDED_H

#include "base/base.h"
#include "registry/registry.h"

/* The service name both halves use on the wire, as rpcx's servicePath. */
#define MRPC__REGSRV_SERVICE "Registry"

#endif
