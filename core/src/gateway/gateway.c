/* gateway.c: the gateway object (see moonrpc/gateway.h), the top of the
 * subsystem: creation with its defaults, wiring the server's hooks (the
 * fallback handler to the forwarder, the foreign hook to HTTP) and the
 * lower layers' callbacks, close in order (forwards, instances, HTTP
 * connections, handles), the final free, and the counters. Services and
 * instances are in gateway_table.c, forwarded calls in gateway_fwd.c, HTTP
 * in gateway_http.c.
 *
 * The gateway is freed once it is closing and everything counted in `live`
 * (its three handles and every instance client being closed) has closed:
 * never from inside close, as a completion may close the gateway from a
 * callback that still uses it. */
#include <stdlib.h>
#include <string.h>
#include "gateway/gateway.h"

#define DEF_TIMEOUT_MS 10000
#define DEF_RETRIES 2
#define DEF_CONNECT_MS 2000
#define DEF_DOWN_MS 1000
#define DEF_MAX_SERVICES 1024
#define DEF_MAX_WAITING 1024
#define DEF_MAX_INFLIGHT 100000
#define DEF_MAX_PIPELINE 32
#define DEF_MAX_HEADER 65536
#define DEF_HTTP_IDLE_MS 60000
#define DEF_HTTP_REQUEST_MS 30000

static void gw_unref(mrpc_gateway_t *gw);

/* ---- the gateway ------------------------------------------------------------------------ */

int mrpc_gateway_new(uv_loop_t *loop, mrpc_server_t *srv, mrpc_registry_t *reg,
                     const mrpc_gateway_opts_t *opts, mrpc_gateway_t **out) {
  mrpc_gateway_t *gw;
  mrpc_gateway_opts_t o;
  int mode;
  if (!loop || !srv || !reg || !out) return MRPC_EINVAL;
  if (opts) o = *opts;
  else memset(&o, 0, sizeof o);
  mode = mrpc_select_mode_from_name(o.selector ? o.selector : "RoundRobin");
  if (mode < 0 || mode == MRPC_SELECT_CLOSEST || mode == MRPC_SELECT_USER)
    return MRPC_EINVAL;
  if (!(gw = calloc(1, sizeof *gw))) return MRPC_ENOMEM;
  if (o.group && *o.group && !(gw->group = mrpc__strndup(o.group, strlen(o.group)))) {
    free(gw);
    return MRPC_ENOMEM;
  }
  o.selector = mrpc_select_mode_name((mrpc_select_mode_t)mode);
  o.group = gw->group;
  if (!o.timeout_ms) o.timeout_ms = DEF_TIMEOUT_MS;
  if (!o.retries) o.retries = DEF_RETRIES;
  if (!o.conns) o.conns = 1;
  if (o.conns > MRPC_GATEWAY_MAX_CONNS) o.conns = MRPC_GATEWAY_MAX_CONNS;
  if (!o.connect_timeout_ms) o.connect_timeout_ms = DEF_CONNECT_MS;
  if (!o.down_ms) o.down_ms = DEF_DOWN_MS;
  if (!o.max_services) o.max_services = DEF_MAX_SERVICES;
  if (!o.max_waiting) o.max_waiting = DEF_MAX_WAITING;
  if (!o.max_inflight) o.max_inflight = DEF_MAX_INFLIGHT;
  if (!o.max_pipeline) o.max_pipeline = DEF_MAX_PIPELINE;
  if (!o.max_header) o.max_header = DEF_MAX_HEADER;
  if (!o.http_idle_ms) o.http_idle_ms = DEF_HTTP_IDLE_MS;
  if (!o.http_request_ms) o.http_request_ms = DEF_HTTP_REQUEST_MS;
  mrpc_limits_default(&o.limits);
  gw->loop = loop;
  gw->srv = srv;
  gw->reg = reg;
  gw->opts = o;
  gw->mode = mode;
  uv_timer_init(loop, &gw->timer);
  gw->timer.data = gw;
  uv_check_init(loop, &gw->check);
  gw->check.data = gw;
  uv_timer_init(loop, &gw->sweep);
  gw->sweep.data = gw;
  gw->live = 3; /* the timers and the check */
  gw->unref = gw_unref;
  gw->svc_listed = mrpc__gw_fw_listed;
  mrpc_server_set_fallback(srv, mrpc__gw_on_fallback, gw);
  mrpc_server_set_foreign(srv, mrpc__gw_http_on_data, gw);
  *out = gw;
  return 0;
}

/* Frees what is left once the timers, the check and every client are
 * closed. */
static void gw_unref(mrpc_gateway_t *gw) {
  mrpc_gateway_cb cb;
  void *ud;
  if (--gw->live > 0 || !gw->closing) return;
  cb = gw->close_cb;
  ud = gw->close_udata;
  mrpc__gw_table_free(gw);
  mrpc__gw_fw_free_spare(gw);
  free(gw->group);
  free(gw);
  if (cb) cb(NULL, ud);
}

static void on_timer_closed(uv_handle_t *h) { gw_unref(h->data); }

void mrpc_gateway_close(mrpc_gateway_t *gw, mrpc_gateway_cb cb, void *udata) {
  if (gw->closing) return;
  gw->closing = 1;
  gw->close_cb = cb;
  gw->close_udata = udata;
  mrpc_server_set_fallback(gw->srv, NULL, NULL);
  mrpc_server_set_foreign(gw->srv, NULL, NULL);
  mrpc__gw_fw_close(gw);     /* watches stop, waiting forwards end */
  mrpc__gw_table_close(gw);  /* clients close: their forwards end */
  mrpc__gw_http_close_all(gw);
  mrpc__gw_uncork_all(gw);
  uv_close((uv_handle_t *)&gw->timer, on_timer_closed);
  uv_close((uv_handle_t *)&gw->sweep, on_timer_closed);
  uv_close((uv_handle_t *)&gw->check, on_timer_closed);
}

void mrpc_gateway_stats(const mrpc_gateway_t *gw, mrpc_gateway_stats_t *out) {
  memset(out, 0, sizeof *out);
  out->services = gw->nsvcs;
  out->instances = gw->ninsts;
  out->connections = gw->nclients;
  out->inflight = gw->inflight;
  out->waiting = gw->waiting;
  out->http_conns = gw->nhconns;
  out->forwarded = gw->forwarded;
  out->failovers = gw->failovers;
  out->http_requests = gw->http_requests;
}
