/* server/server.h (internal): the rpcx server subsystem, moonrpc/server.h's
 * implementation. It listens (TCP or unix sockets), accepts connections,
 * decodes their frames, dispatches requests to registered handlers (or the
 * fallback hook), writes the answers, pushes, and shuts down gracefully;
 * every server also answers the Reflection service.
 *
 * It may call codec/ (frames, JSON/msgpack), transport/ (the framed stream
 * a connection is, addresses) and base/ (buffers, logging, strings); nothing
 * else in core/src. Other folders include only this header from here.
 *
 * Files, each calling only those below it:
 *   server.c       the top: new (adds the reflection service), listeners,
 *                  accepting connections, shutdown and close
 *   reflect.c      the Reflection service, a handler on the public API
 *   dispatch.c     which handler a frame goes to; heartbeats; auth
 *   req.c          a request and its answer
 *   server_conn.c  what hosts do with connections (hold, push, raw writes)
 *   lifetime.c     reference counts, freeing, the graceful shutdown sequence
 *   services.c     the service table */
#ifndef MOONRPC_SERVER_INT_H
#define MOONRPC_SERVER_INT_H

#include "base/base.h"
#include "codec/codec.h"
#include "transport/transport.h"

#define MAX_LISTENERS 8
#define SMALL_META 16

typedef struct method_s {
  char *name; /* owned; freed with its service (services.c) */
  mrpc_handler_fn fn;
  void *udata; /* the registrant's: never freed here */
  struct method_s *next; /* the service's list, which owns every method */
} method_t;

typedef struct service_s {
  char *name; /* first: reflection sorts by it; owned, freed with the service */
  char *meta; /* rpcx metadata, for reflection; NULL: none; owned likewise */
  method_t *methods; /* owned list, freed with the service */
  struct service_s *next; /* s->services, which owns every service */
} service_t;

typedef struct listener_s {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u; /* the listener is freed in the handle's close callback (server.c) */
  mrpc_server_t *srv; /* holds one of srv->live until that close callback */
  int is_pipe;
  char addr[300];
} listener_t;

typedef struct mrpc_conn_s {
  mrpc__stream_t st; /* first: the stream's handle is the conn's; its buffers
                      * are the stream's, released when the handle closes */
  mrpc_server_t *srv; /* the handle and every ref below hold one of srv->live */
  struct mrpc_conn_s *prev, *next; /* srv->conns; a conn unlinks itself when
                                    * it is freed (lifetime.c) */
  int refs;   /* 1 while the handle is open, +1 per request, hold or work;
               * the last mrpc__conn_unref frees the conn */
  int closed; /* the handle's close callback has run */
  int foreign; /* handed to the foreign hook: not rpcx */
  int calls;   /* calls in flight on it: not idle while > 0 */
  void *data;  /* the host's, see mrpc_conn_set_data: never freed here */
  char peer[80]; /* the peer address, looked up on first use */
} conn_t;

struct mrpc_req_s {
  mrpc_server_t *srv;
  conn_t *conn;        /* a call on conn (a ref, and one of srv->live),
                        * dropped when the request is answered or dropped;
                        * NULL while the request is on the free list */
  mrpc_frame_t frame;  /* borrows the decoder's bytes until detached */
  mrpc_buf_t store;    /* owned copy of the frame for deferred replies; kept
                        * on the free list, freed with the server */
  mrpc_meta_t *meta;   /* owned copy of the metadata pairs; freed likewise */
  size_t meta_cap;
  uint64_t timeout, deadline;
  void *data;          /* the host's: never freed here */
  unsigned gen;        /* bumped on release: tells a held request apart */
  mrpc_req_t *next_free;
};

struct mrpc_server_s {
  uv_loop_t *loop;      /* the host's */
  mrpc_server_opts_t opts; /* a copy; its udata pointers are the host's */
  service_t *services;  /* owned; freed with the server (services.c) */
  listener_t *listeners[MAX_LISTENERS]; /* each freed in its handle's close
                                         * callback after close_listeners */
  int nlisteners;
  conn_t *conns;        /* every conn not freed yet; each frees itself at
                         * its last unref (lifetime.c) */
  size_t nconns;
  size_t inflight;      /* calls: requests held and host work begun */
  size_t live;          /* open handles + requests held; the last
                         * mrpc__server_unref after close frees the server */
  mrpc_req_t *free_reqs; /* owned; freed with the server (lifetime.c) */
  mrpc_buf_t scratch;   /* gzip output, reused; owned, freed with the server */
  mrpc__rbuf_t rbuf;    /* the read buffer every connection shares (see
                         * transport.h); owned, freed with the server */
  uv_timer_t idle_timer; /* the idle_timeout sweep (server.c); closed by
                          * mrpc_server_close, dropping one of `live` */
  uint64_t refused, idle_closed; /* counters for mrpc_server_stats */
  size_t queued_peak;   /* of connections already closed */
  int refusing;         /* max_conns reached and logged; cleared below it */
  uv_timer_t timer;     /* shutdown deadline; closed by mrpc_server_close,
                         * its close callback drops the last of `live` */
  int shutting, closing;
  int flushing;         /* shutdown: connections close once written */
  size_t open_conns;    /* connections whose handle is not closed yet */
  uint64_t shutdown_timeout;
  mrpc_server_cb shutdown_cb, close_cb;
  void *shutdown_udata, *close_udata; /* the caller's: never freed here */
  mrpc_handler_fn fallback;   /* requests for services not registered */
  void *fallback_udata;       /* the host's */
  mrpc_foreign_fn foreign;    /* connections that do not speak rpcx */
  void *foreign_udata;        /* the host's */
  uint64_t push_seq;
};

/* ---- services.c: the service table ---------------------------------------- */

/* The service / method called exactly name[0..n), or NULL. */
service_t *mrpc__service_find(mrpc_server_t *s, const char *name, size_t n);
method_t *mrpc__method_find(service_t *v, const char *name, size_t n);

/* Frees every service of s (the server is going). */
void mrpc__services_free(mrpc_server_t *s);

/* ---- lifetime.c: references and the graceful shutdown ---------------------- */

/* Takes / drops a reference to c together with one of the server's (a hold,
 * or the open handle's); the last of each frees the conn / the closed
 * server. */
void mrpc__conn_ref(conn_t *c);
void mrpc__conn_unref(conn_t *c);

/* Drops one of the server's references; after mrpc_server_close, the last
 * frees it and calls its close callback. */
void mrpc__server_unref(mrpc_server_t *s);

/* A call (a request, or host work) begins / ends on c: it holds c and the
 * server, and counts in s->inflight. When the last call ends during a
 * graceful shutdown, the connections go on to close. */
void mrpc__call_begin(conn_t *c);
void mrpc__call_end(conn_t *c);

/* c's handle has closed (c->closed set, s->open_conns counted down, the
 * host told): a flushing shutdown waiting for the last connection ends, and
 * the handle's references are dropped. */
void mrpc__conn_closed(conn_t *c);

/* mrpc_server_shutdown has set its fields and closed the listeners: flush
 * now if no call is running, else when the last ends or at the timeout. */
void mrpc__shutdown_begin(mrpc_server_t *s);

/* 1 while the connection is open and writes may go out (replies, pushes). */
static inline int mrpc__conn_writable(const conn_t *c) {
  return !c->closed && !c->st.closing && !c->st.failed;
}

/* ---- server_conn.c ---------------------------------------------------------- */

/* The peer's address, looked up once and cached in c->peer (the caller
 * checks that the connection is there). */
int mrpc__conn_peer(conn_t *c, char *buf, size_t len);

/* ---- req.c: requests --------------------------------------------------------- */

/* A request for frame f on c (borrowing f's bytes), a call begun; NULL
 * without memory. */
mrpc_req_t *mrpc__req_get(mrpc_server_t *s, conn_t *c, const mrpc_frame_t *f);

/* Copies the frame out of the decoder's buffer so that the request outlives
 * the read that delivered it. 0 or MRPC_ENOMEM. */
int mrpc__req_detach(mrpc_req_t *r);

/* ---- dispatch.c ---------------------------------------------------------------- */

/* The connection stream's on_frame: a heartbeat, or a request to dispatch
 * (f is valid only during the call). Non-zero stops reading frames from
 * this read (see transport.h). */
int mrpc__dispatch_frame(mrpc__stream_t *st, mrpc_frame_t *f);

/* ---- reflect.c ------------------------------------------------------------------ */

/* Registers the Reflection service on s. */
int mrpc__reflection_add(mrpc_server_t *s);

#endif
