/* moonrpc/gateway.h: server-side discovery, the gateway.
 *
 * A gateway attaches to a server the host created (mrpc_server_new) and
 * answers every request for a service that server does not register
 * itself: it looks the service up in a registry (moonrpc/registry.h),
 * picks an instance with one of rpcx's selectors (moonrpc/selector.h) and
 * forwards the request to it over a client connection (moonrpc/client.h).
 * The same port answers HTTP/1.x too, as rpcx's own server does.
 *
 * rpcx frames. Path, method, metadata, serialize type and payload bytes go
 * to the instance unchanged (a gzipped request is forwarded gzipped, by
 * rpcx's rule); the backend connection has its own sequence numbers, and
 * the reply's payload and metadata come back with the caller's. An error
 * reply stays an error reply with the instance's __rpcx_error__. Oneway
 * requests are forwarded oneway; heartbeats are answered by the server.
 * Failures the gateway itself reports are error replies whose text starts
 * with "rpcx: gateway: " (see the README's gateway section).
 *
 * HTTP. rpcx's convention (X-RPCX-ServicePath, X-RPCX-ServiceMethod,
 * X-RPCX-SerializeType, X-RPCX-MessageID, X-RPCX-Meta, the body as the
 * payload; the reply with X-RPCX-MessageStatusType, X-RPCX-ErrorMessage,
 * X-RPCX-Meta and the payload as body), and `POST /Service/Method` with a
 * JSON body, forwarded with serialize type JSON and answered with JSON.
 * HTTP/1.1 keep-alive, HTTP/1.0, Content-Length and chunked request
 * bodies (bounded by max_frame once decoded; other transfer codings are
 * refused with 501), and pipelining. Idle keep-alive connections
 * and requests that trickle in are timed out (http_idle_ms,
 * http_request_ms).
 *
 * Per service, the first request starts a registry watch; requests wait
 * (a bounded queue) for its first list. Client connections are one per
 * instance address, shared by every service that lists it, opened on the
 * first call and closed once the address has left every list and its
 * calls have ended.
 *
 * Every forwarded request is answered exactly once: with the instance's
 * reply, or with an error (no instance, transport failure, timeout, the
 * gateway closing). Everything runs on the host's loop. */
#ifndef MOONRPC_GATEWAY_H
#define MOONRPC_GATEWAY_H

#include <uv.h>
#include "common.h"
#include "server.h"
#include "registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrpc_gateway_s mrpc_gateway_t;

/* Completion of mrpc_gateway_close; `gw` is NULL (already freed). */
typedef void (*mrpc_gateway_cb)(mrpc_gateway_t *gw, void *udata);

/* The most connections to one instance (opts.conns). */
#define MRPC_GATEWAY_MAX_CONNS 64

typedef struct mrpc_gateway_opts_s {
  const char *selector;   /* rpcx's name ("RoundRobin", "RandomSelect",
                             "WeightedRoundRobin", "WeightedICMP",
                             "ConsistentHash"); NULL: "RoundRobin". Closest
                             and SelectByUser need a host and are refused.
                             The gateway measures no round trips, so under
                             WeightedICMP every instance weighs 1. */
  const char *group;      /* only instances whose metadata lists this
                             group=; NULL or "": every instance */
  uint64_t timeout_ms;    /* per request when it carries no
                             __ServerTimeout; also bounds the wait for a
                             service's first list. 0: 10000 */
  int failfast;           /* 0: Failover (default): a transport failure
                             before any reply is retried on another
                             instance; 1: Failfast: no retry. A remote
                             error or a timeout is never retried. */
  unsigned retries;       /* Failover's further attempts; 0: 2 */
  unsigned conns;         /* connections to each instance, calls spread
                             over them round robin, so an address served
                             by several workers (moonrpc serve --workers,
                             SO_REUSEPORT) uses them all. 0: 1; at most
                             MRPC_GATEWAY_MAX_CONNS */
  uint64_t connect_timeout_ms; /* for each instance connection; 0: 2000 */
  uint64_t down_ms;       /* an instance that failed to connect is passed
                             over this long when another one can be
                             picked; 0: 1000 */
  unsigned max_services;  /* services watched at once; past it, the one
                             used least recently and not in use by any
                             call is dropped (its watch stops), and when
                             all are in use a new one is refused. 0: 1024 */
  unsigned max_waiting;   /* requests waiting for one service's first
                             list; 0: 1024 */
  unsigned max_inflight;  /* forwarded requests not yet answered, in all;
                             0: 100000 */
  unsigned max_pipeline;  /* HTTP requests read ahead on one connection
                             and not yet answered; 0: 32 */
  uint32_t max_header;    /* an HTTP request's header block; past it: 431.
                             0: 65536 */
  uint64_t http_idle_ms;  /* an HTTP connection with no request, not even
                             part of one, is closed after this long (the
                             keep-alive timeout). 0: 60000 */
  uint64_t http_request_ms; /* a request whose head and body have not all
                             come this long after its first byte gets 408
                             and the connection closes. 0: 30000 */
  mrpc_limits_t limits;   /* for the instance connections; max_frame also
                             bounds HTTP bodies (past it: 413). Zero fields
                             take defaults. */
  mrpc_log_fn log;        /* NULL: logs go to stderr */
  void *log_udata;
} mrpc_gateway_opts_t;

/* Creates a gateway on `loop` and attaches it to `srv`: it installs the
 * server's fallback handler and foreign hook (mrpc_server_set_fallback,
 * mrpc_server_set_foreign), so call it before mrpc_server_listen. `srv`
 * and `reg` stay the host's: both must outlive the gateway (close the
 * gateway before the server and the registry). `opts` may be NULL; it is
 * copied, its strings too. Returns 0, MRPC_EINVAL (NULL loop, srv, reg or
 * out; an unknown or unsupported selector) or MRPC_ENOMEM. */
int mrpc_gateway_new(uv_loop_t *loop, mrpc_server_t *srv, mrpc_registry_t *reg,
                     const mrpc_gateway_opts_t *opts, mrpc_gateway_t **out);

/* Detaches the gateway from its server (the fallback handler and foreign
 * hook are removed), answers every request still pending with an error
 * ("rpcx: gateway: closed", HTTP 503), closes its HTTP connections once
 * those answers are written, stops its registry watches and closes its
 * instance connections. Then frees the gateway and calls `cb` (may be
 * NULL; never from inside this function). Safe from inside any callback
 * of the gateway's server. Do not use `gw` afterwards.
 *
 * For a graceful stop, shut the server down first: mrpc_server_shutdown
 * lets forwarded requests finish, rpcx and HTTP alike (each HTTP request
 * counts as work on its connection, mrpc_conn_work_begin), and writes
 * their answers; HTTP requests that arrive meanwhile get 503. Then close
 * the gateway, then the server. */
void mrpc_gateway_close(mrpc_gateway_t *gw, mrpc_gateway_cb cb, void *udata);

/* Counters, for monitoring and tests. */
typedef struct mrpc_gateway_stats_s {
  size_t services;      /* services watched */
  size_t instances;     /* instance addresses known (listed, or retiring
                           with calls still pending) */
  size_t connections;   /* instance client connections created and open */
  size_t inflight;      /* requests forwarded and not yet answered */
  size_t waiting;       /* requests waiting for a service's first list */
  size_t http_conns;    /* HTTP connections open */
  uint64_t forwarded;   /* requests sent to an instance (retries count) */
  uint64_t failovers;   /* retries on another instance */
  uint64_t http_requests; /* HTTP requests parsed */
} mrpc_gateway_stats_t;

/* Fills `out` with the gateway's counters. */
void mrpc_gateway_stats(const mrpc_gateway_t *gw, mrpc_gateway_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
