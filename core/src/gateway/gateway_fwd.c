/* gateway_fwd.c: forwarded calls (see moonrpc/gateway.h): the deadline
 * list, picking an instance, sending, Failover on a transport failure, the
 * answer, and the server's fallback handler that turns every rpcx request
 * for an unregistered service into a forward.
 *
 * A forward (gw_fw_t) lives from its request to its one completion: it
 * waits in its service's queue for the first list, or is in flight on one
 * instance's client, and is on the deadline list all along.
 *
 * It sits above the table (gateway_table.c), whose services and instances
 * it uses, and below HTTP: an rpcx request is answered here, an HTTP call
 * (mrpc__gw_forward) through the gw_done_fn its owner handed in. The table
 * tells it a service's first list came through gw->svc_listed
 * (mrpc__gw_fw_listed). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway.h"

/* ---- the deadline list ---------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void arm(mrpc_gateway_t *gw) {
  uint64_t now = uv_now(gw->loop);
  if (!gw->thead || gw->closing) {
    uv_timer_stop(&gw->timer);
    return;
  }
  uv_timer_start(&gw->timer, on_timer,
                 gw->thead->deadline > now ? gw->thead->deadline - now : 0, 0);
}

/* Most forwards share the default timeout, so a new one usually goes last.
 * The timer is re-armed only for a new head; a head that leaves early
 * leaves the timer to fire for nothing and re-arm. */
static void tl_insert(mrpc_gateway_t *gw, gw_fw_t *fw) {
  gw_fw_t *p = gw->ttail;
  while (p && p->deadline > fw->deadline) p = p->tprev;
  fw->tprev = p;
  fw->tnext = p ? p->tnext : gw->thead;
  if (fw->tnext) fw->tnext->tprev = fw;
  else gw->ttail = fw;
  if (p) p->tnext = fw;
  else gw->thead = fw;
  fw->timed = 1;
  if (gw->thead == fw) arm(gw);
}

static void tl_remove(mrpc_gateway_t *gw, gw_fw_t *fw) {
  if (!fw->timed) return;
  if (fw->tprev) fw->tprev->tnext = fw->tnext;
  else gw->thead = fw->tnext;
  if (fw->tnext) fw->tnext->tprev = fw->tprev;
  else gw->ttail = fw->tprev;
  fw->tprev = fw->tnext = NULL;
  fw->timed = 0;
}

/* ---- forwards --------------------------------------------------------------- */

static gw_fw_t *fw_new(mrpc_gateway_t *gw) {
  gw_fw_t *fw = gw->spare;
  if (fw) gw->spare = fw->tnext;
  else if (!(fw = malloc(sizeof *fw))) return NULL;
  memset(fw, 0, offsetof(gw_fw_t, method_small));
  fw->where = FW_IDLE;
  fw->gw = gw;
  gw->inflight++;
  return fw;
}

static void fw_free(gw_fw_t *fw) {
  mrpc_gateway_t *gw = fw->gw;
  free(fw->method_alloc);
  free(fw->avoid);
  fw->tnext = gw->spare;
  gw->spare = fw;
  gw->inflight--;
}

static void rpcx_done(mrpc_gateway_t *gw, mrpc_req_t *req, int outcome, const char *msg,
                      const mrpc_frame_t *reply);

/* Ends a forward: exactly once, with the instance's reply or an error. */
static void fw_end(gw_fw_t *fw, int outcome, const char *msg,
                     const mrpc_frame_t *reply) {
  mrpc_req_t *req = fw->req;
  mrpc_gateway_t *gw = fw->gw;
  gw_done_fn done = fw->done;
  void *owner = fw->owner;
  tl_remove(fw->gw, fw);
  if (fw->svc) fw->svc->refs--;
  fw_free(fw);
  if (req) rpcx_done(gw, req, outcome, msg, reply);
  else done(owner, outcome, msg, reply);
}

static void on_reply(int status, const mrpc_frame_t *reply, void *ud);

/* Sends the call to `inst`. 0, or a negative code (nothing is in flight). */
static int inst_call(gw_fw_t *fw, gw_inst_t *inst, const gw_call_t *v) {
  mrpc_gateway_t *gw = fw->gw;
  mrpc_call_args_t a;
  mrpc_client_t **cp = &inst->client[inst->rr++ % gw->opts.conns];
  int rc;
  if (!*cp) {
    mrpc_client_opts_t co;
    memset(&co, 0, sizeof co);
    co.limits = gw->opts.limits;
    co.connect_timeout_ms = gw->opts.connect_timeout_ms;
    if ((rc = mrpc_client_new(gw->loop, inst->addr, &co, cp)) < 0) {
      *cp = NULL;
      return rc;
    }
    gw->nclients++;
    if (inst->corked) mrpc_client_cork(*cp); /* as its siblings are */
  }
  /* No timeout_ms: the client would add a second __ServerTimeout. The
   * caller's own is in the metadata, forwarded as it came, and the
   * deadline is kept here. */
  memset(&a, 0, sizeof a);
  a.service = fw->svc->name;
  a.method = fw->method;
  a.meta = v->meta;
  a.meta_count = v->nmeta;
  a.payload = v->payload;
  a.payload_len = v->len;
  a.serialize = v->serialize;
  a.gzip = v->gzip;
  a.oneway = v->oneway;
  if (!gw->closing) mrpc__gw_cork_inst(gw, inst);
  rc = mrpc_client_call(*cp, &a, on_reply, fw, &fw->id);
  if (rc < 0) return rc;
  fw->cli = *cp;
  gw->forwarded++;
  if (!v->oneway) {
    fw->inst = inst;
    fw->where = FW_INFLIGHT;
    inst->pending++;
  }
  return 0;
}

/* ---- forwarding ------------------------------------------------------------------ */

/* The call as it is to be sent now. An rpcx request is read again each
 * time: its bytes move once the handler has returned. */
static void fw_view(gw_fw_t *fw, gw_call_t *v) {
  const mrpc_frame_t *f;
  if (fw->call) {
    *v = *fw->call;
    return;
  }
  f = mrpc_req_frame(fw->req);
  memset(v, 0, sizeof *v);
  v->meta = f->meta;
  v->nmeta = f->meta_count;
  v->payload = f->payload;
  v->len = f->payload_len;
  v->serialize = (uint8_t)mrpc_frame_serialize(f);
  v->gzip = mrpc_frame_compress(f) == MRPC_COMPRESS_GZIP;
  v->oneway = mrpc_frame_is_oneway(f);
}

/* Picks an instance, passing over one that failed lately when another can
 * be had. NULL: no instance. */
static gw_inst_t *pick(gw_fw_t *fw, const gw_call_t *v) {
  gw_svc_t *svc = fw->svc;
  const char *addr;
  gw_inst_t *inst, *other;
  if (mrpc_selector_select(svc->sel, svc->name, fw->method, v->payload, v->len,
                           fw->avoid, &addr) < 0 ||
      !(inst = mrpc__gw_svc_inst(svc, addr)))
    return NULL;
  if (mrpc__gw_inst_is_down(fw->gw, inst) && svc->ninsts > 1 &&
      mrpc_selector_select(svc->sel, svc->name, fw->method, v->payload, v->len,
                           inst->addr, &addr) == 0 &&
      (other = mrpc__gw_svc_inst(svc, addr)) && !mrpc__gw_inst_is_down(fw->gw, other))
    inst = other;
  return inst;
}

/* Transport failures: no reply came, so another instance may be tried. */
static int is_transport(int status) {
  return (status < 0 && status > -30000) || status == MRPC_ECONNLOST ||
         status == MRPC_EHEARTBEAT || status == MRPC_ETIMEDOUT;
}

static void transport_text(char *buf, size_t len, int status, const char *addr) {
  if (status == MRPC_ECONNLOST)
    snprintf(buf, len, "rpcx: gateway: ECONNLOST: the connection to %s was lost", addr);
  else if (is_transport(status))
    snprintf(buf, len, "rpcx: gateway: %s connecting to %s", mrpc_err_name(status), addr);
  else
    snprintf(buf, len, "rpcx: gateway: %s calling %s: %s", mrpc_err_name(status),
             addr, mrpc_strerror(status));
}

static int can_retry(const gw_fw_t *fw, int status) {
  const mrpc_gateway_t *gw = fw->gw;
  return is_transport(status) && !gw->opts.failfast && !gw->closing &&
         !fw->expired && fw->attempts <= gw->opts.retries;
}

/* Notes a failed attempt on `inst`; 1 when the forward should try again. */
static int attempt_failed(gw_fw_t *fw, gw_inst_t *inst, int status,
                          char *text, size_t len) {
  mrpc_gateway_t *gw = fw->gw;
  transport_text(text, len, status, inst->addr);
  if (is_transport(status)) mrpc__gw_inst_down(gw, inst, text + 15);
  if (!can_retry(fw, status)) return 0;
  free(fw->avoid);
  fw->avoid = mrpc__strndup(inst->addr, strlen(inst->addr));
  gw->failovers++;
  return 1;
}

static void fw_attempt(gw_fw_t *fw) {
  char text[400];
  for (;;) {
    gw_call_t v;
    gw_inst_t *inst;
    int rc, oneway;
    fw_view(fw, &v);
    oneway = v.oneway;
    if (!(inst = pick(fw, &v))) {
      snprintf(text, sizeof text, "rpcx: gateway: no instance of service %s",
               fw->svc->name);
      fw_end(fw, GW_ENOINST, text, NULL);
      return;
    }
    fw->attempts++;
    if ((rc = inst_call(fw, inst, &v)) == 0) {
      if (oneway) fw_end(fw, GW_REPLY, NULL, NULL);
      return;
    }
    if (!attempt_failed(fw, inst, rc, text, sizeof text)) {
      fw_end(fw, GW_ETRANSPORT, text, NULL);
      return;
    }
  }
}

static void on_reply(int status, const mrpc_frame_t *reply, void *ud) {
  gw_fw_t *fw = ud;
  mrpc_gateway_t *gw = fw->gw;
  gw_inst_t *inst = fw->inst;
  char text[400];
  fw->inst = NULL;
  fw->where = FW_IDLE;
  inst->pending--;
  if (status == 0) {
    inst->down_until = 0;
    fw_end(fw, GW_REPLY, NULL, reply);
  } else if (status == MRPC_ECANCELED && fw->expired) {
    fw_end(fw, GW_ETIMEOUT, "rpcx: gateway: timeout", NULL);
  } else if (status == MRPC_ECLOSED || gw->closing) {
    fw_end(fw, GW_ECLOSED, "rpcx: gateway: closed", NULL);
  } else if (attempt_failed(fw, inst, status, text, sizeof text)) {
    fw_attempt(fw);
  } else {
    fw_end(fw, GW_ETRANSPORT, text, NULL);
  }
  mrpc__gw_inst_check(gw, inst);
}

static void on_timer(uv_timer_t *t) {
  mrpc_gateway_t *gw = t->data;
  uint64_t now = uv_now(gw->loop);
  char text[400];
  gw_fw_t *fw;
  while (!gw->closing && (fw = gw->thead) && fw->deadline <= now) {
    tl_remove(gw, fw);
    fw->expired = 1;
    if (fw->where == FW_WAITING) {
      gw_svc_t *svc = fw->svc;
      gw_fw_t **pp;
      for (pp = &svc->whead; *pp && *pp != fw; pp = &(*pp)->wnext) {}
      if (*pp) *pp = fw->wnext;
      svc->wtail = NULL;
      for (pp = &svc->whead; *pp; pp = &(*pp)->wnext) svc->wtail = *pp;
      svc->nwaiting--;
      gw->waiting--;
      snprintf(text, sizeof text,
               "rpcx: gateway: no instance of service %s (the registry has not answered)",
               svc->name);
      fw_end(fw, GW_ENOINST, text, NULL);
    } else if (fw->where == FW_INFLIGHT) {
      /* The client ends it now with ECANCELED: on_reply sees `expired`. */
      if (mrpc_client_cancel(fw->cli, fw->id) < 0) {
        gw_inst_t *inst = fw->inst;
        inst->pending--;
        fw_end(fw, GW_ETIMEOUT, "rpcx: gateway: timeout", NULL);
        mrpc__gw_inst_check(gw, inst);
      }
    }
  }
  arm(gw);
}

/* Starts a forward whose owner fields are set: finds the service and sends
 * the call, or queues it until the service's first list. */
static void fw_start(gw_fw_t *fw, const char *service, size_t len) {
  mrpc_gateway_t *gw = fw->gw;
  gw_svc_t *svc;
  char text[400];
  int outcome;
  if (gw->closing) {
    fw_end(fw, GW_ECLOSED, "rpcx: gateway: closed", NULL);
    return;
  }
  if (gw->inflight > gw->opts.max_inflight) {
    snprintf(text, sizeof text, "rpcx: gateway: too many calls in flight (max_inflight %u)",
             gw->opts.max_inflight);
    fw_end(fw, GW_EBUSY, text, NULL);
    return;
  }
  if (!(svc = mrpc__gw_svc_get(gw, service, len, &outcome, text, sizeof text))) {
    fw_end(fw, outcome, text, NULL);
    return;
  }
  fw->svc = svc;
  svc->refs++;
  svc->used = uv_now(gw->loop);
  tl_insert(gw, fw);
  if (svc->listed) {
    fw_attempt(fw);
    return;
  }
  if (svc->nwaiting >= gw->opts.max_waiting) {
    snprintf(text, sizeof text,
             "rpcx: gateway: too many requests waiting for service %s (max_waiting %u)",
             svc->name, gw->opts.max_waiting);
    fw_end(fw, GW_EBUSY, text, NULL);
    return;
  }
  fw->where = FW_WAITING;
  if (svc->wtail) svc->wtail->wnext = fw;
  else svc->whead = fw;
  svc->wtail = fw;
  svc->nwaiting++;
  gw->waiting++;
}

int mrpc__gw_forward(mrpc_gateway_t *gw, const gw_call_t *call, gw_done_fn done,
                     void *owner) {
  gw_fw_t *fw = fw_new(gw);
  if (!fw) return MRPC_ENOMEM;
  fw->call = call;
  fw->done = done;
  fw->owner = owner;
  fw->method = call->method;
  fw->deadline = uv_now(gw->loop) + (call->timeout_ms ? call->timeout_ms : gw->opts.timeout_ms);
  fw_start(fw, call->service, call->service_len);
  return 0;
}

/* The first list of a service came (gateway_table.c's svc_listed): what
 * waited for it goes out, in order. */
void mrpc__gw_fw_listed(gw_svc_t *svc) {
  mrpc_gateway_t *gw = svc->gw;
  gw_fw_t *fw;
  while (!gw->closing && (fw = svc->whead)) {
    svc->whead = fw->wnext;
    if (!svc->whead) svc->wtail = NULL;
    svc->nwaiting--;
    gw->waiting--;
    fw->where = FW_IDLE;
    fw_attempt(fw);
  }
}

/* ---- closing ---------------------------------------------------------------------- */

void mrpc__gw_fw_close(mrpc_gateway_t *gw) {
  gw_svc_t *svc;
  gw_fw_t *fw;
  uv_timer_stop(&gw->timer);
  for (svc = gw->svcs; svc; svc = svc->next) {
    mrpc__gw_svc_stop(svc);
    while ((fw = svc->whead)) {
      svc->whead = fw->wnext;
      svc->nwaiting--;
      gw->waiting--;
      fw_end(fw, GW_ECLOSED, "rpcx: gateway: closed", NULL);
    }
    svc->wtail = NULL;
  }
}

void mrpc__gw_fw_free_spare(mrpc_gateway_t *gw) {
  gw_fw_t *fw;
  while ((fw = gw->spare)) {
    gw->spare = fw->tnext;
    free(fw);
  }
}

/* ---- rpcx requests ------------------------------------------------------------------- */

int mrpc__gw_is_not_found(const char *msg, size_t len) {
  static const char a[] = "rpcx: can't find service ", b[] = "rpcx: can't find method ";
  return (len >= sizeof a - 1 && memcmp(msg, a, sizeof a - 1) == 0) ||
         (len >= sizeof b - 1 && memcmp(msg, b, sizeof b - 1) == 0);
}

/* The instance's answer goes back as it came: an error reply stays one,
 * with its text, payload and metadata (less __rpcx_error__, which
 * mrpc_req_error writes again). */
static void rpcx_done(mrpc_gateway_t *gw, mrpc_req_t *req, int outcome, const char *msg,
                      const mrpc_frame_t *reply) {
  mrpc_meta_t small[16], *meta = small;
  char ebuf[512], *err = ebuf;
  const char *e;
  size_t i, n = 0, elen = 0;
  if (outcome != GW_REPLY) {
    mrpc_req_error(req, msg, NULL, 0, NULL, 0);
    return;
  }
  if (!reply) {
    mrpc_req_drop(req); /* oneway: sent, nothing to answer */
    return;
  }
  if (!gw->closing) mrpc__gw_cork_conn(gw, mrpc_req_conn(req));
  if (!(e = mrpc_frame_error(reply, &elen))) {
    mrpc_req_reply(req, reply->payload, reply->payload_len, reply->meta,
                   reply->meta_count);
    return;
  }
  if ((reply->meta_count > 16 && !(meta = malloc(reply->meta_count * sizeof *meta))) ||
      (elen >= sizeof ebuf && !(err = malloc(elen + 1)))) {
    if (meta != small) free(meta);
    mrpc_req_error(req, "rpcx: gateway: out of memory", NULL, 0, NULL, 0);
    return;
  }
  memcpy(err, e, elen);
  err[elen] = 0;
  for (i = 0; i < reply->meta_count; i++) {
    const mrpc_meta_t *m = &reply->meta[i];
    if (m->key_len == sizeof MRPC_META_ERROR - 1 &&
        memcmp(m->key, MRPC_META_ERROR, m->key_len) == 0)
      continue;
    meta[n++] = *m;
  }
  mrpc_req_error(req, err, reply->payload_len ? reply->payload : NULL,
                 reply->payload_len, meta, n);
  if (meta != small) free(meta);
  if (err != ebuf) free(err);
}

/* The server's fallback: every request for a service it does not register
 * itself. */
void mrpc__gw_on_fallback(mrpc_req_t *req, void *ud) {
  mrpc_gateway_t *gw = ud;
  const mrpc_frame_t *f = mrpc_req_frame(req);
  gw_fw_t *fw = fw_new(gw);
  uint64_t t = mrpc_req_timeout(req);
  if (!fw) {
    mrpc_req_error(req, "rpcx: gateway: out of memory", NULL, 0, NULL, 0);
    return;
  }
  fw->req = req;
  if (f->method_len < sizeof fw->method_small) {
    memcpy(fw->method_small, f->method, f->method_len);
    fw->method_small[f->method_len] = 0;
    fw->method = fw->method_small;
  } else if ((fw->method_alloc = mrpc__strndup(f->method, f->method_len))) {
    fw->method = fw->method_alloc;
  } else {
    fw_end(fw, GW_EBUSY, "rpcx: gateway: out of memory", NULL);
    return;
  }
  fw->deadline = t ? mrpc_req_deadline(req) : uv_now(gw->loop) + gw->opts.timeout_ms;
  fw_start(fw, f->path, f->path_len);
}

