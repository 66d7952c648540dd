/* services.c: the server's service table: what mrpc_server_register puts in
 * it, the rpcx metadata a service carries, the lookups dispatch makes and
 * the freeing when the server goes. The table is a plain list owned by the
 * server (s->services); nothing here touches connections or requests, so
 * the dispatch, the reflection service and the server's freeing all build
 * on it. */
#include <stdlib.h>
#include <string.h>
#include "server/server.h"

service_t *mrpc__service_find(mrpc_server_t *s, const char *name, size_t n) {
  service_t *v;
  for (v = s->services; v; v = v->next)
    if (strncmp(v->name, name, n) == 0 && v->name[n] == 0) return v;
  return NULL;
}

method_t *mrpc__method_find(service_t *v, const char *name, size_t n) {
  method_t *m;
  for (m = v->methods; m; m = m->next)
    if (strncmp(m->name, name, n) == 0 && m->name[n] == 0) return m;
  return NULL;
}

int mrpc_server_register(mrpc_server_t *s, const char *service,
                         const char *method, mrpc_handler_fn fn, void *udata) {
  service_t *v;
  method_t *m;
  if (!s || !service || !method || !fn || !*service || !*method)
    return MRPC_EINVAL;
  v = mrpc__service_find(s, service, strlen(service));
  if (!v) {
    v = calloc(1, sizeof *v);
    if (!v || !(v->name = mrpc__strndup(service, strlen(service)))) {
      free(v);
      return MRPC_ENOMEM;
    }
    v->next = s->services;
    s->services = v;
  }
  m = mrpc__method_find(v, method, strlen(method));
  if (!m) {
    m = calloc(1, sizeof *m);
    if (!m || !(m->name = mrpc__strndup(method, strlen(method)))) {
      free(m);
      return MRPC_ENOMEM;
    }
    m->next = v->methods;
    v->methods = m;
  }
  m->fn = fn;
  m->udata = udata;
  return 0;
}

int mrpc_server_set_metadata(mrpc_server_t *s, const char *service, const char *meta) {
  service_t *v = service ? mrpc__service_find(s, service, strlen(service)) : NULL;
  char *m;
  if (!v) return MRPC_ENOSERVICE;
  if (!(m = mrpc__strndup(meta ? meta : "", meta ? strlen(meta) : 0))) return MRPC_ENOMEM;
  free(v->meta);
  v->meta = m;
  return 0;
}

static void free_service(service_t *v) {
  method_t *m, *mn;
  for (m = v->methods; m; m = mn) {
    mn = m->next;
    free(m->name);
    free(m);
  }
  free(v->name);
  free(v->meta);
  free(v);
}

int mrpc_server_unregister(mrpc_server_t *s, const char *service) {
  service_t **pp;
  for (pp = &s->services; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->name, service) == 0) {
      service_t *v = *pp;
      *pp = v->next;
      free_service(v);
      return 0;
    }
  }
  return MRPC_ENOSERVICE;
}

void mrpc__services_free(mrpc_server_t *s) {
  service_t *v;
  while ((v = s->services)) {
    s->services = v->next;
    free_service(v);
  }
}
