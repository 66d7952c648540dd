/* gateway.h (internal): the gateway subsystem, server-side discovery
 * (moonrpc/gateway.h). It takes every rpcx request a server does not
 * serve itself (the server's fallback handler) and every HTTP request on
 * the server's port (its foreign hook), finds the service in the registry,
 * picks an instance with a selector and forwards the call there with a
 * client, with Failover and a deadline.
 *
 * It may call base, codec, client, cluster (the selector), registry and
 * server. Inside, calls point down only:
 *   gateway.c            the gateway: creation, close, stats; wires the
 *                        server's hooks and the callbacks below
 *   gateway_http.c       HTTP connections: pipelining, keep-alive, timeouts
 *   gateway_http_call.c  an HTTP request as a call, its outcome as a response
 *   gateway_http_parse.c the HTTP parser, a pure function over bytes
 *   gateway_fwd.c        forwarded calls, and the rpcx fallback handler
 *   gateway_table.c      services and instances, corking
 * A lower file reports upward only through callbacks it was handed: the
 * table through gw->svc_listed and gw->unref, the forwarder through a
 * call's gw_done_fn, gateway_http_call.c through a request's ready_cb. */
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
 * valid until the completion (the gateway reads them again to retry).
 * Nothing in it is owned: the caller keeps it all. */
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
struct gw_svc_s;

struct mrpc_gateway_s {
  uv_loop_t *loop;
  mrpc_server_t *srv;
  mrpc_registry_t *reg;
  mrpc_gateway_opts_t opts; /* defaults filled; strings point at ours */
  char *group;              /* ours (opts.group); gw_unref frees it */
  int mode;                 /* mrpc_select_mode_t */
  /* The table's (gateway_table.c), freed by mrpc__gw_table_free. */
  struct gw_svc_s *svcs;
  size_t nsvcs;
  struct gw_svc_s *dead;    /* evicted, freed at the loop's next check */
  struct gw_inst_s *insts;
  size_t ninsts, nclients;
  uv_check_t check;         /* uncorks what this loop turn corked */
  mrpc_conn_t **ccorked;    /* each held (mrpc_conn_hold) until uncorked */
  size_t nccorked, capccorked;
  struct gw_inst_s **icorked; size_t nicorked, capicorked;
  /* Set by gateway.c, called by the table: a service's first list came
   * (gateway_fwd.c sends its waiting forwards); a client counted in `live`
   * has closed. */
  void (*svc_listed)(struct gw_svc_s *svc);
  void (*unref)(mrpc_gateway_t *gw);
  /* The forwarder's (gateway_fwd.c). */
  struct gw_fw_s *thead, *ttail; /* forwards with a deadline, in order */
  struct gw_fw_s *spare;    /* free forwards, reused; freed by
                               mrpc__gw_fw_free_spare */
  uv_timer_t timer;         /* the first deadline */
  size_t inflight, waiting;
  uint64_t forwarded, failovers, http_requests;
  /* HTTP's (gateway_http.c). */
  gw_hconn_t *hconns;       /* open HTTP connections, each freed by
                               gateway_http.c once closed and idle */
  size_t nhconns;
  uv_timer_t sweep;         /* HTTP idle and request timeouts, while
                               there are HTTP connections */
  int closing;
  int live;                 /* the timers, the check and the instance
                               clients still closing */
  mrpc_gateway_cb close_cb;
  void *close_udata;
};

/* ---- gateway_table.c: services and instances -------------------------------- */

/* An instance address, shared by the services that list it. It lives
 * while a list holds it or a forward is in flight on it; the table frees
 * it (mrpc__gw_inst_check, or mrpc__gw_table_free at the end). */
typedef struct gw_inst_s {
  char *addr;              /* ours, freed with the instance */
  mrpc_client_t *client[MRPC_GATEWAY_MAX_CONNS]; /* opts.conns of them, each
                              NULL until the first call through it; ours,
                              closed when the instance goes or on close */
  unsigned rr;             /* the next of `client` to use */
  int lists;               /* services whose current list holds it */
  int pending;             /* forwards in flight on the client */
  uint64_t down_until;     /* uv_now ms: passed over until then */
  int corked;
  struct gw_inst_s *next;
} gw_inst_t;

/* A service: its watch, its selector fed by the watch, the instances of
 * its current list, and (the forwarder's) the forwards waiting for the
 * first list. The table frees it (on eviction, a loop turn later, or at
 * the end), with its watch, selector, name and list. */
typedef struct gw_svc_s {
  mrpc_gateway_t *gw;
  char *name;              /* ours */
  size_t name_len;
  mrpc_watch_t *watch;     /* ours; NULL once stopped */
  mrpc_selector_t *sel;    /* ours */
  int listed;              /* the first list has come */
  gw_inst_t **insts;       /* ours: the current list's instances (a `lists`
                              reference on each) */
  size_t ninsts;
  struct gw_fw_s *whead, *wtail; /* waiting for the first list (the
                              forwarder's queue; it ends them) */
  size_t nwaiting;
  unsigned refs;           /* forwards that name it, waiting or not: it
                              is not evicted while any does */
  uint64_t used;           /* uv_now of its last forward */
  struct gw_svc_s *next;
} gw_svc_t;

/* The service named name[0..n), created with its watch on first use; NULL
 * with *outcome and `msg` filled when it cannot be. At max_services, the
 * service no forward names that was used least recently makes room (its
 * watch stops at once, its memory goes at the loop's next check, as a
 * callback up the stack may still read it). */
gw_svc_t *mrpc__gw_svc_get(mrpc_gateway_t *gw, const char *name, size_t n,
                           int *outcome, char *msg, size_t msglen);
/* The instance of the service's current list at `addr`, or NULL. */
gw_inst_t *mrpc__gw_svc_inst(gw_svc_t *svc, const char *addr);
/* Stops the service's watch (the gateway is closing). */
void mrpc__gw_svc_stop(gw_svc_t *svc);
/* Closes and frees an instance no list holds and no forward uses. */
void mrpc__gw_inst_check(mrpc_gateway_t *gw, gw_inst_t *inst);
int mrpc__gw_inst_is_down(mrpc_gateway_t *gw, const gw_inst_t *inst);
/* Passes the instance over for down_ms; logs `why` when it was up. */
void mrpc__gw_inst_down(mrpc_gateway_t *gw, gw_inst_t *inst, const char *why);
/* Corks a connection answered (held until uncorked) or an instance's
 * client written to in this loop turn; the loop's check uncorks them. */
void mrpc__gw_cork_conn(mrpc_gateway_t *gw, mrpc_conn_t *c);
void mrpc__gw_cork_inst(mrpc_gateway_t *gw, gw_inst_t *inst);
void mrpc__gw_uncork_all(mrpc_gateway_t *gw);
/* Closing: uncorks, and closes every instance's client (which ends the
 * forwards in flight on it). */
void mrpc__gw_table_close(mrpc_gateway_t *gw);
/* The end: frees every service and instance, and the cork lists. */
void mrpc__gw_table_free(mrpc_gateway_t *gw);

/* ---- gateway_fwd.c: forwarded calls ------------------------------------------ */

enum { FW_IDLE, FW_WAITING, FW_INFLIGHT };

/* A forwarded call, from its request to its completion. The forwarder
 * owns it: freed (to gw->spare) when it ends. */
typedef struct gw_fw_s {
  mrpc_gateway_t *gw;
  gw_svc_t *svc;           /* a `refs` reference, dropped when it ends */
  mrpc_req_t *req;         /* an rpcx request (answered by the gateway) */
  const gw_call_t *call;   /* or a call the owner keeps (HTTP) */
  gw_done_fn done;
  void *owner;
  const char *method;      /* NUL-terminated */
  char *method_alloc;      /* ours when the small buffer is too short */
  char *avoid;             /* ours: the instance that failed last (a copy) */
  gw_inst_t *inst;         /* the attempt in flight (a `pending` on it) */
  mrpc_client_t *cli;      /* the client of inst it is on (not ours) */
  uint64_t id;             /* its client call id */
  uint64_t deadline;       /* uv_now ms */
  unsigned attempts;
  int where;               /* FW_IDLE, FW_WAITING or FW_INFLIGHT */
  int timed, expired;      /* on the deadline list; its deadline passed */
  struct gw_fw_s *tprev, *tnext; /* the deadline list (tnext: spare list) */
  struct gw_fw_s *wnext;   /* the service's waiting queue */
  char method_small[48];   /* last: a new forward clears what comes before */
} gw_fw_t;

/* The server's fallback handler. */
void mrpc__gw_on_fallback(mrpc_req_t *req, void *udata);

/* Forwards one call (HTTP). 0, or a negative code and `done` is not
 * called (MRPC_ENOMEM). */
int mrpc__gw_forward(mrpc_gateway_t *gw, const gw_call_t *call,
                     gw_done_fn done, void *owner);

/* gw->svc_listed: sends the forwards that waited for the service's first
 * list. */
void mrpc__gw_fw_listed(gw_svc_t *svc);
/* Closing: the deadline timer stops, every service's watch stops and its
 * waiting forwards end (GW_ECLOSED). */
void mrpc__gw_fw_close(mrpc_gateway_t *gw);
/* The end: frees the spare forwards. */
void mrpc__gw_fw_free_spare(mrpc_gateway_t *gw);

/* "rpcx: can't find service/method ...": an unknown name, not a failure. */
int mrpc__gw_is_not_found(const char *msg, size_t len);

/* ---- gateway_http.c: the foreign hook, and closing every HTTP connection
 * when the gateway closes. */
void mrpc__gw_http_on_data(mrpc_conn_t *c, const char *data, size_t len,
                           void *udata);
void mrpc__gw_http_close_all(mrpc_gateway_t *gw);

#endif
