/* gateway_table.c: the gateway's services and instances (see gateway.h).
 * A service has a registry watch and a selector fed by it, and references
 * the instances of its current list; an instance is one address with one
 * client, shared by every service that lists it. Services are created on
 * first use and evicted at max_services. Corking is here too: the
 * instances' clients and the rpcx connections answered in one loop turn
 * are corked, and a check handle uncorks them (and frees evicted
 * services) once the turn is over.
 *
 * This is the bottom of the gateway: it calls the registry, the selector
 * and the clients, nothing of the gateway above it. It reports upward
 * through the two callbacks gateway.c set in the gateway: svc_listed (the
 * first list of a service came: the forwarder sends what waited) and unref
 * (a client it closed is closed).
 *
 * Lifetimes. An instance lives while a service lists it or a forward is in
 * flight on it. Services and instances are never freed while the gateway
 * is closing, only once it is done (mrpc__gw_table_free, from the loop): a
 * completion may close the gateway from inside a callback that still uses
 * them. */
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway.h"

#define MAX_SERVICE_NAME 200

/* ---- corking, per loop turn ---------------------------------------------------- */

static void release_dead(mrpc_gateway_t *gw);

static void on_check(uv_check_t *h) {
  mrpc__gw_uncork_all(h->data);
  release_dead(h->data);
}

static void start_check(mrpc_gateway_t *gw) {
  if (!uv_is_active((uv_handle_t *)&gw->check)) uv_check_start(&gw->check, on_check);
}

void mrpc__gw_cork_conn(mrpc_gateway_t *gw, mrpc_conn_t *c) {
  if (gw->nccorked == gw->capccorked) {
    size_t n = gw->capccorked ? gw->capccorked * 2 : 64;
    mrpc_conn_t **a = realloc(gw->ccorked, n * sizeof *a);
    if (!a) return;
    gw->ccorked = a;
    gw->capccorked = n;
  }
  mrpc_conn_hold(c);
  mrpc_conn_cork(c);
  gw->ccorked[gw->nccorked++] = c;
  start_check(gw);
}

/* Corks or uncorks every open client of `inst`. */
static void inst_cork_clients(gw_inst_t *inst, int cork) {
  size_t i;
  for (i = 0; i < MRPC_GATEWAY_MAX_CONNS; i++) {
    if (!inst->client[i]) continue;
    if (cork) mrpc_client_cork(inst->client[i]);
    else mrpc_client_uncork(inst->client[i]);
  }
}

void mrpc__gw_cork_inst(mrpc_gateway_t *gw, gw_inst_t *inst) {
  if (inst->corked) return;
  if (gw->nicorked == gw->capicorked) {
    size_t n = gw->capicorked ? gw->capicorked * 2 : 16;
    gw_inst_t **a = realloc(gw->icorked, n * sizeof *a);
    if (!a) return;
    gw->icorked = a;
    gw->capicorked = n;
  }
  inst->corked = 1;
  inst_cork_clients(inst, 1);
  gw->icorked[gw->nicorked++] = inst;
  start_check(gw);
}

static void inst_uncork(mrpc_gateway_t *gw, gw_inst_t *inst) {
  size_t i;
  if (!inst->corked) return;
  inst->corked = 0;
  inst_cork_clients(inst, 0);
  for (i = 0; i < gw->nicorked; i++)
    if (gw->icorked[i] == inst) gw->icorked[i] = NULL;
}

void mrpc__gw_uncork_all(mrpc_gateway_t *gw) {
  size_t i;
  uv_check_stop(&gw->check);
  /* Uncorking may run callbacks that cork again: take the lists first. */
  while (gw->nicorked || gw->nccorked) {
    for (i = 0; i < gw->nicorked; i++) {
      gw_inst_t *inst = gw->icorked[i];
      if (!inst) continue;
      gw->icorked[i] = NULL;
      inst->corked = 0;
      inst_cork_clients(inst, 0);
    }
    gw->nicorked = 0;
    for (i = 0; i < gw->nccorked; i++) {
      mrpc_conn_t *c = gw->ccorked[i];
      mrpc_conn_uncork(c);
      mrpc_conn_release(c);
    }
    gw->nccorked = 0;
  }
}

/* ---- instances ---------------------------------------------------------------- */

/* A client counted in gw->live has closed: gateway.c is told. */
static void on_client_closed(mrpc_client_t *c, void *ud) {
  mrpc_gateway_t *gw = ud;
  gw->unref(gw);
}

static void inst_client_close(mrpc_gateway_t *gw, gw_inst_t *inst) {
  size_t i;
  inst_uncork(gw, inst);
  for (i = 0; i < MRPC_GATEWAY_MAX_CONNS; i++) {
    mrpc_client_t *c = inst->client[i];
    if (!c) continue;
    inst->client[i] = NULL;
    gw->nclients--;
    gw->live++;
    mrpc_client_close(c, on_client_closed, gw);
  }
}

static gw_inst_t *inst_get(mrpc_gateway_t *gw, const char *addr) {
  gw_inst_t *inst;
  for (inst = gw->insts; inst; inst = inst->next)
    if (strcmp(inst->addr, addr) == 0) return inst;
  if (!(inst = calloc(1, sizeof *inst))) return NULL;
  if (!(inst->addr = mrpc__strndup(addr, strlen(addr)))) {
    free(inst);
    return NULL;
  }
  inst->next = gw->insts;
  gw->insts = inst;
  gw->ninsts++;
  return inst;
}

/* An instance no list holds and no forward uses is closed and freed
 * (never while the gateway closes: see the top of the file). */
void mrpc__gw_inst_check(mrpc_gateway_t *gw, gw_inst_t *inst) {
  gw_inst_t **pp;
  if (gw->closing || inst->lists > 0 || inst->pending > 0) return;
  for (pp = &gw->insts; *pp && *pp != inst; pp = &(*pp)->next) {}
  if (*pp) *pp = inst->next;
  gw->ninsts--;
  inst_client_close(gw, inst);
  free(inst->addr);
  free(inst);
}

int mrpc__gw_inst_is_down(mrpc_gateway_t *gw, const gw_inst_t *inst) {
  return inst->down_until && uv_now(gw->loop) < inst->down_until;
}

void mrpc__gw_inst_down(mrpc_gateway_t *gw, gw_inst_t *inst, const char *why) {
  if (!mrpc__gw_inst_is_down(gw, inst))
    mrpc__log(gw->opts.log, gw->opts.log_udata, 1, "gateway: %s", why);
  inst->down_until = uv_now(gw->loop) + gw->opts.down_ms;
}

/* ---- services ----------------------------------------------------------------- */

static int name_ok(const char *s, size_t n) {
  size_t i;
  if (n == 0 || n > MAX_SERVICE_NAME) return 0;
  for (i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
          (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.' ||
          ch == ':'))
      return 0;
  }
  return 1;
}

gw_inst_t *mrpc__gw_svc_inst(gw_svc_t *svc, const char *addr) {
  size_t i;
  for (i = 0; i < svc->ninsts; i++)
    if (strcmp(svc->insts[i]->addr, addr) == 0) return svc->insts[i];
  return NULL;
}

/* The list of a service: the selector takes it, the instances it names are
 * referenced (the new ones before the old ones are released, so that an
 * instance that stays is never closed), and requests waiting for the
 * first list go out. */
static void on_list(int status, const mrpc_reg_entry_t *list, size_t n,
                    void *ud) {
  gw_svc_t *svc = ud;
  mrpc_gateway_t *gw = svc->gw;
  mrpc_server_info_t *info = NULL;
  gw_inst_t **insts = NULL, **old = svc->insts;
  size_t i, k = 0, nold = svc->ninsts, count;
  int rc;
  if (status < 0 || gw->closing) return;
  if (n && !(info = malloc(n * sizeof *info))) goto nomem;
  for (i = 0; i < n; i++) {
    info[i].addr = list[i].addr;
    info[i].meta = list[i].meta;
  }
  rc = mrpc_selector_update(svc->sel, info, n, gw->group);
  free(info);
  if (rc < 0) goto nomem;
  count = mrpc_selector_count(svc->sel);
  if (count && !(insts = calloc(count, sizeof *insts))) goto nomem;
  for (i = 0; i < count; i++) {
    gw_inst_t *inst = inst_get(gw, mrpc_selector_address(svc->sel, i));
    if (!inst) continue; /* out of memory: mrpc__gw_svc_inst will not find it */
    inst->lists++;
    insts[k++] = inst;
  }
  svc->insts = insts;
  svc->ninsts = k;
  for (i = 0; i < nold; i++) {
    old[i]->lists--;
    mrpc__gw_inst_check(gw, old[i]);
  }
  free(old);
  if (!svc->listed) {
    svc->listed = 1;
    gw->svc_listed(svc); /* the forwarder sends what waited for it */
  }
  return;
nomem:
  mrpc__log(gw->opts.log, gw->opts.log_udata, 1,
            "gateway: out of memory taking the list of %s: keeping the last",
            svc->name);
}

static void svc_free(gw_svc_t *svc) {
  size_t i;
  if (svc->watch) mrpc_registry_unwatch(svc->watch);
  for (i = 0; i < svc->ninsts; i++) svc->insts[i]->lists--;
  free(svc->insts);
  mrpc_selector_free(svc->sel);
  free(svc->name);
  free(svc);
}

/* Evicted services: their instances lose a list, and are closed when it
 * was their last and no forward is on them. */
static void release_dead(mrpc_gateway_t *gw) {
  gw_svc_t *svc;
  while (!gw->closing && (svc = gw->dead)) {
    gw_inst_t **insts = svc->insts;
    size_t i, n = svc->ninsts;
    gw->dead = svc->next;
    svc->insts = NULL;
    svc->ninsts = 0;
    svc_free(svc);
    for (i = 0; i < n; i++) {
      insts[i]->lists--;
      mrpc__gw_inst_check(gw, insts[i]);
    }
    free(insts);
  }
}

/* Makes room for a new service at max_services (see gateway.h).
 * 0, or -1 when every service is named by a forward. */
static int svc_evict(mrpc_gateway_t *gw) {
  gw_svc_t **p, **oldest = NULL, *svc;
  for (p = &gw->svcs; *p; p = &(*p)->next)
    if ((*p)->refs == 0 && (!oldest || (*p)->used < (*oldest)->used)) oldest = p;
  if (!oldest) return -1;
  svc = *oldest;
  *oldest = svc->next;
  gw->nsvcs--;
  if (svc->watch) mrpc_registry_unwatch(svc->watch);
  svc->watch = NULL;
  svc->next = gw->dead;
  gw->dead = svc;
  start_check(gw);
  return 0;
}

/* The service named name[0..n), created (with its watch) on first use.
 * NULL with *outcome and `msg` filled when it cannot be. */
gw_svc_t *mrpc__gw_svc_get(mrpc_gateway_t *gw, const char *name, size_t n,
                           int *outcome, char *msg, size_t msglen) {
  gw_svc_t *svc;
  int rc;
  for (svc = gw->svcs; svc; svc = svc->next)
    if (svc->name_len == n && memcmp(svc->name, name, n) == 0) return svc;
  if (!name_ok(name, n)) {
    *outcome = GW_EBADNAME;
    snprintf(msg, msglen, "rpcx: gateway: bad service name '%.*s'",
             (int)(n > 64 ? 64 : n), name);
    return NULL;
  }
  if (gw->nsvcs >= gw->opts.max_services && svc_evict(gw) < 0) {
    *outcome = GW_EBUSY;
    snprintf(msg, msglen, "rpcx: gateway: too many services in use (max_services %u)",
             gw->opts.max_services);
    return NULL;
  }
  *outcome = GW_EBUSY;
  snprintf(msg, msglen, "rpcx: gateway: out of memory");
  if (!(svc = calloc(1, sizeof *svc))) return NULL;
  svc->gw = gw;
  svc->name_len = n;
  if (!(svc->name = mrpc__strndup(name, n)) ||
      mrpc_selector_new((mrpc_select_mode_t)gw->mode,
                        uv_hrtime() ^ (uint64_t)(uintptr_t)svc, &svc->sel) < 0) {
    free(svc->name);
    free(svc);
    return NULL;
  }
  rc = mrpc_registry_watch(gw->reg, svc->name, on_list, svc, &svc->watch);
  if (rc < 0) {
    *outcome = GW_ETRANSPORT;
    snprintf(msg, msglen, "rpcx: gateway: registry: cannot watch %s: %s",
             svc->name, mrpc_strerror(rc));
    svc->watch = NULL;
    svc_free(svc);
    return NULL;
  }
  svc->next = gw->svcs;
  gw->svcs = svc;
  gw->nsvcs++;
  return svc;
}

/* ---- closing ------------------------------------------------------------------- */

void mrpc__gw_svc_stop(gw_svc_t *svc) {
  if (svc->watch) mrpc_registry_unwatch(svc->watch);
  svc->watch = NULL;
}

void mrpc__gw_table_close(mrpc_gateway_t *gw) {
  gw_inst_t *inst;
  mrpc__gw_uncork_all(gw);
  /* Closing a client ends its pending calls now, with MRPC_ECLOSED. */
  for (inst = gw->insts; inst; inst = inst->next) inst_client_close(gw, inst);
}

void mrpc__gw_table_free(mrpc_gateway_t *gw) {
  gw_svc_t *svc;
  gw_inst_t *inst;
  while ((svc = gw->svcs) || (svc = gw->dead)) {
    if (svc == gw->svcs) gw->svcs = svc->next;
    else gw->dead = svc->next;
    svc_free(svc);
  }
  while ((inst = gw->insts)) {
    gw->insts = inst->next;
    free(inst->addr);
    free(inst);
  }
  free(gw->ccorked);
  free(gw->icorked);
  gw->ccorked = NULL;
  gw->icorked = NULL;
}
