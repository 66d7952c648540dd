/* registry.c: the top of the service registry: URL parsing, the argument
 * checks every backend relies on, and dispatch to the backend named by the
 * URL's scheme (see moonrpc/registry.h). It calls the backends through
 * their ops tables; they never call this file (a backend reports a close
 * through the callback it was handed). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "transport/transport.h"
#include "registry/registry.h"

static const mrpc_registry_ops_t *const backends[] = {
  &mrpc__etcd_ops,
  &mrpc__redis_ops,
  &mrpc__moonrpc_ops,
  NULL,
};

/* Copies `s` into `out` without leading or trailing slashes. */
static int trim_slashes(const char *s, char *out, size_t len) {
  size_t n;
  while (*s == '/') s++;
  n = strlen(s);
  while (n > 0 && s[n - 1] == '/') n--;
  if (n >= len) return MRPC_EADDR;
  memcpy(out, s, n);
  out[n] = 0;
  return 0;
}

int mrpc_registry_open(uv_loop_t *loop, const char *url, mrpc_registry_t **out) {
  const mrpc_registry_ops_t *const *b;
  const char *sep, *hp, *path;
  char scheme[16], hostport[300], host[256];
  mrpc_registry_t *r;
  struct sockaddr_storage ss;
  int port, rc;
  if (!url || !(sep = strstr(url, "://")) || (size_t)(sep - url) >= sizeof scheme)
    return MRPC_EADDR;
  memcpy(scheme, url, (size_t)(sep - url));
  scheme[sep - url] = 0;
  hp = sep + 3;
  path = strchr(hp, '/');
  if (!path) path = hp + strlen(hp);
  if ((size_t)(path - hp) >= sizeof hostport) return MRPC_EADDR;
  memcpy(hostport, hp, (size_t)(path - hp));
  hostport[path - hp] = 0;
  rc = mrpc__sockaddr(hostport, &ss, host, sizeof host, &port);
  if (rc < 0 || port == 0) return MRPC_EADDR;
  for (b = backends; *b; b++)
    if (strcmp((*b)->scheme, scheme) == 0) break;
  if (!*b) return MRPC_EADDR;
  if (!(r = calloc(1, sizeof *r))) return MRPC_ENOMEM;
  r->ops = *b;
  r->loop = loop;
  if (trim_slashes(*path && path[1] ? path : "rpcx", r->base, sizeof r->base) < 0 ||
      (rc = r->ops->open(r, host, port)) < 0) {
    free(r);
    return rc < 0 ? rc : MRPC_EADDR;
  }
  *out = r;
  return 0;
}

const char *mrpc_registry_base(const mrpc_registry_t *r) { return r->base; }

static int check_names(const char *service, const char *addr) {
  if (!service || !*service || strchr(service, '/')) return MRPC_EINVAL;
  if (addr && (!*addr || strchr(addr, '/'))) return MRPC_EINVAL;
  return 0;
}

int mrpc_registry_register(mrpc_registry_t *r, const char *service, const char *addr,
                           const char *meta, unsigned ttl_s, mrpc_reg_cb cb, void *udata) {
  int rc = check_names(service, addr);
  if (rc < 0 || !addr || ttl_s == 0) return MRPC_EINVAL;
  return r->ops->reg(r, service, addr, meta ? meta : "", ttl_s, cb, udata);
}

int mrpc_registry_update(mrpc_registry_t *r, const char *service, const char *addr,
                         const char *meta, mrpc_reg_cb cb, void *udata) {
  int rc = check_names(service, addr);
  if (rc < 0 || !addr) return MRPC_EINVAL;
  return r->ops->update(r, service, addr, meta ? meta : "", cb, udata);
}

int mrpc_registry_unregister(mrpc_registry_t *r, const char *service, const char *addr,
                             mrpc_reg_cb cb, void *udata) {
  int rc = check_names(service, addr);
  if (rc < 0 || !addr) return MRPC_EINVAL;
  return r->ops->unreg(r, service, addr, cb, udata);
}

int mrpc_registry_list(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                       void *udata) {
  int rc = service && !*service ? 0 : check_names(service, NULL);
  if (rc < 0 || !cb) return MRPC_EINVAL;
  return r->ops->list(r, service, cb, udata);
}

int mrpc_registry_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                        void *udata, mrpc_watch_t **out) {
  int rc = check_names(service, NULL);
  if (rc < 0 || !cb) return MRPC_EINVAL;
  return r->ops->watch(r, service, cb, udata, out);
}

void mrpc_registry_unwatch(mrpc_watch_t *w) {
  if (w) w->reg->ops->unwatch(w);
}

/* The backend is closed: free the registry, then tell the user. */
static void closed(int status, void *udata) {
  mrpc_registry_t *r = udata;
  mrpc_reg_cb cb = r->close_cb;
  void *ud = r->close_udata;
  (void)status;
  free(r);
  if (cb) cb(0, ud);
}

void mrpc_registry_close(mrpc_registry_t *r, mrpc_reg_cb cb, void *udata) {
  r->close_cb = cb;
  r->close_udata = udata;
  r->ops->close(r, closed, r);
}
