/* registry/etcd/etcd.c: the top of the etcd v3 registry backend (scheme
 * "etcd"): open, close, and the ops table registry.c dispatches through.
 * What the backend does and how its files stack is in etcd.h; this file
 * only calls down into them.
 *
 * close() deletes every key this registry registered and revokes its
 * leases (one attempt, 1 s at most), ends operations in flight with
 * MRPC_ECLOSED, then frees everything and reports through the registry's
 * close callback.
 *
 * libcurl needs curl_global_init() once per process before any other call;
 * it is not thread-safe, so the first open() does it (a static flag: the
 * one mutable global in the core, for a process-wide library state). The
 * matching curl_global_cleanup() is left to process exit. */
#include <curl/curl.h>
#include "registry/etcd/etcd.h"

static int etcd_open(mrpc_registry_t *r, const char *host, int port) {
  static int curl_ready; /* see the header comment */
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return MRPC_ENOMEM;
    curl_ready = 1;
  }
  return mrpc__etcd_new(r, host, port);
}

/* The order matters: no watch may report once close() is called, requests
 * in flight are canceled before the goodbyes go out (those ops stay linked
 * and end with MRPC_ECLOSED at the last close), and the HTTP client closes
 * after the last goodbye. */
static void etcd_close(mrpc_registry_t *r, mrpc_reg_cb cb, void *udata) {
  etcd_t *e = r->backend;
  e->closing = 1;
  e->close_cb = cb;
  e->close_udata = udata;
  mrpc__etcd_unwatch_all(e);
  mrpc__etcd_ops_cancel(e);
  mrpc__etcd_insts_bye(e);
  mrpc__etcd_finish(e);
}

const mrpc_registry_ops_t mrpc__etcd_ops = {
  "etcd", etcd_open, mrpc__etcd_reg, mrpc__etcd_update, mrpc__etcd_unreg, mrpc__etcd_list,
  mrpc__etcd_watch, mrpc__etcd_unwatch, etcd_close,
};
