/* gateway_int.h (internal): what the gateway's two halves share.
 * gateway.c holds services, instances and forwarded calls (mrpc__gw_*);
 * gateway_http.c reads HTTP requests on foreign connections and forwards
 * them through mrpc__gw_forward. */
#ifndef MOONRPC_GATEWAY_INT_H
#define MOONRPC_GATEWAY_INT_H

#include "internal.h"
#include "moonrpc/gateway.h"

/* How a forwarded call ended. */
enum {
  GW_REPLY,      /* the instance answered (its status may be an error) */
  GW_ENOINST,    /* no instance of the service (or no list in time) */
  GW_ETIMEOUT,   /* the call's timeout passed */
  GW_ETRANSPORT, /* the instance could not be reached, or the link broke */
  GW_ECLOSED,    /* the gateway is closing */
  GW_EBUSY,      /* a gateway limit: too many services, waiting, in flight */
  GW_EBADNAME    /* the service name cannot be a registry key */
};

/* A call to forward, as HTTP builds it. The strings need not outlive
 * mrpc__gw_forward except `method`, `meta` and `payload`, which must stay
 * valid until the completion (the gateway reads them again to retry). */
typedef struct gw_call_s {
  const char *service;
  size_t service_len;
  const char *method;     /* NUL-terminated */
  const mrpc_meta_t *meta;
  size_t nmeta;
  const char *payload;
  size_t len;
  uint8_t serialize;      /* MRPC_SERIALIZE_* */
  int gzip, oneway;
  uint64_t timeout_ms;    /* 0: the gateway's default */
} gw_call_t;

/* Completion: exactly once per successful mrpc__gw_forward, possibly from
 * inside it. `reply` is set for GW_REPLY (NULL for a oneway call) and is
 * valid only during the call; `msg` is the error text otherwise. */
typedef void (*gw_done_fn)(void *owner, int outcome, const char *msg,
                           const mrpc_frame_t *reply);

typedef struct gw_hconn_s gw_hconn_t;

struct mrpc_gateway_s {
  uv_loop_t *loop;
  mrpc_server_t *srv;
  mrpc_registry_t *reg;
  mrpc_gateway_opts_t opts; /* defaults filled; strings point at ours */
  char *group;
  int mode;                 /* mrpc_select_mode_t */
  struct gw_svc_s *svcs;
  size_t nsvcs;
  struct gw_inst_s *insts;
  size_t ninsts, nclients;
  struct gw_fw_s *thead, *ttail; /* forwards with a deadline, in order */
  struct gw_fw_s *spare;    /* free forwards, reused */
  uv_timer_t timer;         /* the first deadline */
  size_t inflight, waiting;
  uint64_t forwarded, failovers, http_requests;
  gw_hconn_t *hconns;       /* open HTTP connections */
  size_t nhconns;
  int closing;
  int live;                 /* the timer + instance clients closing */
  mrpc_gateway_cb close_cb;
  void *close_udata;
};

/* Forwards one call (gateway.c). 0, or a negative code and `done` is not
 * called (MRPC_ENOMEM). */
int mrpc__gw_forward(mrpc_gateway_t *gw, const gw_call_t *call,
                     gw_done_fn done, void *owner);

/* The HTTP half (gateway_http.c): the foreign hook, and closing every
 * HTTP connection when the gateway closes. */
void mrpc__gw_http_on_data(mrpc_conn_t *c, const char *data, size_t len,
                           void *udata);
void mrpc__gw_http_close_all(mrpc_gateway_t *gw);

/* "rpcx: can't find service/method ...": an unknown name, not a failure. */
int mrpc__gw_is_not_found(const char *msg, size_t len);

#endif
