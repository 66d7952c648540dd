/* client/client.h (internal): one client connection to an rpcx server
 * (client.c, public contract in moonrpc/client.h): the seq -> pending call
 * table, deadlines, heartbeats, server push, and reconnect on the next call.
 * It calls transport/ (one framed stream per link), the codec through the
 * stream, and base/; it reports to its host only through the callbacks the
 * host handed it (mrpc_call_cb, mrpc_push_cb, mrpc_client_cb). Nothing
 * outside client/ includes this header: the other subsystems (registry/,
 * gateway/) use the public API. */
#ifndef MOONRPC_CLIENT_INT_H
#define MOONRPC_CLIENT_INT_H

#include "base/base.h"
#include "transport/transport.h"

#define SMALL_META 16

/* A call in flight. Owned by the client from mrpc_client_call until its
 * callback has run; then back on the spare list, which client_unref frees. */
typedef struct call_s {
  uint64_t seq;
  uint64_t deadline;   /* uv_now ms; 0: none */
  uint64_t sent_ns;    /* heartbeats: for the round trip */
  mrpc_call_cb cb;
  void *udata;
  struct call_s *tprev, *tnext; /* the deadline-ordered list */
  int kind;            /* CALL, PING (user) or HEARTBEAT (ours) */
} call_t;

enum { CALL, PING, HEARTBEAT };

/* One connection attempt and, once up, the connection. Freed by link_unref
 * when its last handle or request has closed (refs), never before. */
typedef struct link_s {
  mrpc__stream_t st;   /* first: its handle is the link's */
  mrpc_client_t *cli;  /* not owned; the link is live while cli->link == it */
  uv_timer_t timer;    /* connect timeout, then heartbeats */
  uv_connect_t creq;
  uv_getaddrinfo_t gai;
  int refs;            /* open handles and requests in flight */
  int up;
  int err;             /* the error a deferred failure reports */
} link_t;

/* The client; freed by client_unref once its timer and every link it
 * detached have closed (live). */
struct mrpc_client_s {
  uv_loop_t *loop;     /* the host's; never closed here */
  char *address;       /* owned; freed by client_unref */
  const char *network;
  char target[300];
  mrpc_client_opts_t opts;
  link_t *link;        /* the live link or NULL; a dead one frees itself */
  call_t **tab;        /* owned (freed by client_unref); open addressing, keyed by seq;
                          the calls in it are owned as above */
  size_t cap, count;
  call_t *thead, *ttail;
  call_t *spare;       /* owned: reusable call structs (via tnext), freed by client_unref */
  uv_timer_t timer;
  uint64_t next_seq;
  uint64_t rtt_us;
  int closing;
  int sending;         /* inside mrpc_client_call: failures are deferred */
  int corked;          /* >0: writes are gathered until uncorked */
  int live;            /* the timer + links still referring to us */
  size_t busy;         /* the host's calls and pings pending: while > 0
                          our handles keep the loop running (update_ref) */
  mrpc_client_cb close_cb;
  void *close_udata;
  mrpc_buf_t scratch;  /* owned, reused for encoding; freed by client_unref */
};

#endif
