/* gateway_int.h (internal): what the gateway's files share. gateway.c
 * holds the gateway, its services and instances; gateway_fwd.c the
 * forwarded calls; gateway_http.c and gateway_http_call.c read HTTP
 * requests on foreign connections and forward them through
 * mrpc__gw_forward. */
#ifndef MOONRPC_GATEWAY_INT_H
#define MOONRPC_GATEWAY_INT_H

#include "base/base.h"
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
  struct gw_svc_s *dead;    /* evicted, freed at the loop's next check */
  struct gw_inst_s *insts;
  size_t ninsts, nclients;
  struct gw_fw_s *thead, *ttail; /* forwards with a deadline, in order */
  struct gw_fw_s *spare;    /* free forwards, reused */
  uv_timer_t timer;         /* the first deadline */
  uv_check_t check;         /* uncorks what this loop turn corked */
  mrpc_conn_t **ccorked; size_t nccorked, capccorked;
  struct gw_inst_s **icorked; size_t nicorked, capicorked;
  size_t inflight, waiting;
  uint64_t forwarded, failovers, http_requests;
  gw_hconn_t *hconns;       /* open HTTP connections */
  size_t nhconns;
  uv_timer_t sweep;         /* HTTP idle and request timeouts, while
                               there are HTTP connections */
  int closing;
  int live;                 /* the timer + instance clients closing */
  mrpc_gateway_cb close_cb;
  void *close_udata;
};

/* An instance address (gateway.c), shared by the services that list it.
 * It lives while a list holds it or a forward is in flight on it. */
typedef struct gw_inst_s {
  char *addr;
  mrpc_client_t *client;   /* NULL until the first call through it */
  int lists;               /* services whose current list holds it */
  int pending;             /* forwards in flight on the client */
  uint64_t down_until;     /* uv_now ms: passed over until then */
  int corked;
  struct gw_inst_s *next;
} gw_inst_t;
void mrpc__gw_cork_conn(mrpc_gateway_t *gw, mrpc_conn_t *c);
void mrpc__gw_cork_inst(mrpc_gateway_t *gw, gw_inst_t *inst);
void mrpc__gw_uncork_all(mrpc_gateway_t *gw);

/* A service (gateway.c): its watch, its selector fed by the watch, the
 * instances of its current list, and the requests waiting for the first
 * list. */
typedef struct gw_svc_s {
  mrpc_gateway_t *gw;
  char *name;
  size_t name_len;
  mrpc_watch_t *watch;     /* NULL once stopped */
  mrpc_selector_t *sel;
  int listed;              /* the first list has come */
  gw_inst_t **insts;       /* the current list's instances (a ref each) */
  size_t ninsts;
  struct gw_fw_s *whead, *wtail; /* waiting for the first list */
  size_t nwaiting;
  unsigned refs;           /* forwards that name it, waiting or not */
  uint64_t used;           /* uv_now of its last forward */
  struct gw_svc_s *next;
} gw_svc_t;

enum { FW_IDLE, FW_WAITING, FW_INFLIGHT };

/* A forwarded call (gateway_fwd.c), from its request to its completion. */
typedef struct gw_fw_s {
  mrpc_gateway_t *gw;
  gw_svc_t *svc;
  mrpc_req_t *req;         /* an rpcx request (answered by the gateway) */
  const gw_call_t *call;   /* or a call the owner keeps (HTTP) */
  gw_done_fn done;
  void *owner;
  const char *method;      /* NUL-terminated */
  char *method_alloc;      /* ours when the small buffer is too short */
  char *avoid;             /* the instance that failed last (a copy) */
  gw_inst_t *inst;         /* the attempt in flight */
  uint64_t id;             /* its client call id */
  uint64_t deadline;       /* uv_now ms */
  unsigned attempts;
  int where;               /* FW_IDLE, FW_WAITING or FW_INFLIGHT */
  int timed, expired;      /* on the deadline list; its deadline passed */
  struct gw_fw_s *tprev, *tnext; /* the deadline list (tnext: spare list) */
  struct gw_fw_s *wnext;   /* the service's waiting queue */
  char method_small[48];   /* last: a new forward clears what comes before */
} gw_fw_t;

/* gateway.c: services and instances. mrpc__gw_svc_get returns the service
 * named name[0..n), created with its watch on first use; NULL with
 * *outcome and `msg` filled when it cannot be. At max_services, the
 * service no forward names that was used least recently makes room (its
 * watch stops at once, its memory goes at the loop's next check, as a
 * callback up the stack may still read it). */
gw_svc_t *mrpc__gw_svc_get(mrpc_gateway_t *gw, const char *name, size_t n,
                           int *outcome, char *msg, size_t msglen);
gw_inst_t *mrpc__gw_svc_inst(gw_svc_t *svc, const char *addr);
/* Closes and frees an instance no list holds and no forward uses. */
void mrpc__gw_inst_check(mrpc_gateway_t *gw, gw_inst_t *inst);
int mrpc__gw_inst_is_down(mrpc_gateway_t *gw, const gw_inst_t *inst);
/* Passes the instance over for down_ms; logs `why` when it was up. */
void mrpc__gw_inst_down(mrpc_gateway_t *gw, gw_inst_t *inst, const char *why);

/* gateway_fwd.c: forwards. A forward whose service is listed is sent;
 * fw_end completes it (exactly once) and frees it. */
void mrpc__gw_fw_attempt(gw_fw_t *fw);
void mrpc__gw_fw_end(gw_fw_t *fw, int outcome, const char *msg,
                     const mrpc_frame_t *reply);
/* The server's fallback handler. */
void mrpc__gw_on_fallback(mrpc_req_t *req, void *udata);

/* Forwards one call (HTTP). 0, or a negative code and `done` is not
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
