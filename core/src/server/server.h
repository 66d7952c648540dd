/* server_int.h (internal): the server's structs, shared by server.c (dispatch,
 * connections, lifetime) and server_conn.c (what hosts do with connections:
 * hold, push, raw writes, cork; the fallback and foreign hooks; the service
 * table as reflection reads it). */
#ifndef MOONRPC_SERVER_INT_H
#define MOONRPC_SERVER_INT_H

#include "base/base.h"
#include "transport/transport.h"

#define MAX_LISTENERS 8
#define SMALL_META 16

typedef struct method_s {
  char *name;
  mrpc_handler_fn fn;
  void *udata;
  struct method_s *next;
} method_t;

typedef struct service_s {
  char *name; /* first: reflection sorts by it */
  char *meta; /* rpcx metadata, for reflection; NULL: none */
  method_t *methods;
  struct service_s *next;
} service_t;

typedef struct listener_s {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  mrpc_server_t *srv;
  int is_pipe;
  char addr[300];
} listener_t;

typedef struct mrpc_conn_s {
  mrpc__stream_t st; /* first: the stream's handle is the conn's */
  mrpc_server_t *srv;
  struct mrpc_conn_s *prev, *next;
  int refs;   /* 1 while the handle is open, +1 per request or hold */
  int closed; /* the handle's close callback has run */
  int foreign; /* handed to the foreign hook: not rpcx */
  void *data;  /* the host's, see mrpc_conn_set_data */
  char peer[80]; /* the peer address, looked up on first use */
} conn_t;

struct mrpc_req_s {
  mrpc_server_t *srv;
  conn_t *conn;
  mrpc_frame_t frame;  /* borrows the decoder's bytes until detached */
  mrpc_buf_t store;    /* owned copy of the frame for deferred replies */
  mrpc_meta_t *meta;   /* owned copy of the metadata pairs */
  size_t meta_cap;
  uint64_t timeout, deadline;
  void *data;
  unsigned gen;        /* bumped on release: tells a held request apart */
  mrpc_req_t *next_free;
};

struct mrpc_server_s {
  uv_loop_t *loop;
  mrpc_server_opts_t opts;
  service_t *services;
  listener_t *listeners[MAX_LISTENERS];
  int nlisteners;
  conn_t *conns;
  size_t nconns;
  size_t inflight;
  size_t live;          /* open handles + requests held */
  mrpc_req_t *free_reqs;
  mrpc_buf_t scratch;   /* gzip output, reused */
  uv_timer_t timer;     /* shutdown deadline */
  int shutting, closing;
  int flushing;         /* shutdown: connections close once written */
  size_t open_conns;    /* connections whose handle is not closed yet */
  uint64_t shutdown_timeout;
  mrpc_server_cb shutdown_cb, close_cb;
  void *shutdown_udata, *close_udata;
  mrpc_handler_fn fallback;   /* requests for services not registered */
  void *fallback_udata;
  mrpc_foreign_fn foreign;    /* connections that do not speak rpcx */
  void *foreign_udata;
  uint64_t push_seq;
};

/* Drops a reference to a connection / the server; the last frees it. */
void mrpc__conn_unref(conn_t *c);
void mrpc__server_unref(mrpc_server_t *s);

/* A call or a connection's work ended: a graceful shutdown waiting for the
 * last one goes on to close the connections. */
void mrpc__server_shutdown_check(mrpc_server_t *s);

/* 1 while the connection is open and writes may go out (replies, pushes). */
static inline int mrpc__conn_writable(const conn_t *c) {
  return !c->closed && !c->st.closing && !c->st.failed;
}

/* The peer's address, looked up once and cached in c->peer (the caller
 * checks that the connection is there). */
int mrpc__conn_peer(conn_t *c, char *buf, size_t len);

/* Adds the reflection service (reflect.c). */
int mrpc__reflection_add(mrpc_server_t *s);

#endif
