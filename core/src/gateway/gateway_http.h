/* gateway_http.h (internal): the gateway's HTTP/1.x side.
 *
 * gateway_http.c owns the connections: it reads requests (the parser
 * below), keeps them in arrival order and writes their responses in that
 * order (pipelining), with keep-alive. gateway_http_call.c turns one
 * parsed request into a forwarded call (rpcx's X-RPCX-* convention, or
 * POST /Service/Method with JSON) and the outcome into a response. */
#ifndef MOONRPC_GATEWAY_HTTP_H
#define MOONRPC_GATEWAY_HTTP_H

#include "gateway/gateway.h"

#define GW_MAX_HEADERS 100

typedef struct gw_hdr_s {
  const char *name, *val;
  size_t nlen, vlen;
} gw_hdr_t;

/* One parsed request; every pointer is into the connection's input and
 * valid only while the request is being started. */
typedef struct gw_http_msg_s {
  const char *method, *target, *body;
  size_t method_len, target_len, body_len;
  size_t head_len;       /* through the blank line */
  int minor;             /* HTTP/1.minor */
  int keep;              /* the connection stays open after the answer */
  int expect_continue;
  gw_hdr_t h[GW_MAX_HEADERS];
  size_t nh;
  const char *err;       /* why, for an error status */
} gw_http_msg_t;

/* One request on a connection, from parsing to its response written.
 * Owned by its connection's queue; `store` and `body` hold what its call
 * points into, so the call stays valid while the gateway retries it. */
typedef struct gw_hreq_s {
  gw_hconn_t *hc;
  struct gw_hreq_s *next;
  mrpc_buf_t resp;        /* the whole response, once ready */
  int ready;              /* resp is complete */
  int forwarded;          /* a call is in flight: the gateway completes it */
  int working;            /* counted by mrpc_conn_work_begin until freed */
  int keep, minor;
  int style;              /* GW_STYLE_* */
  gw_call_t call;
  mrpc_buf_t store;       /* service, method, metadata, payload copies */
  mrpc_buf_t body;        /* a gunzipped body */
  mrpc_meta_t *meta;      /* the call's metadata pairs (malloc'ed) */
  const char *msgid;      /* X-RPCX-MessageID, NUL-terminated in store */
} gw_hreq_t;

enum { GW_STYLE_RPCX = 1, GW_STYLE_JSON = 2 };

/* Looks a header up by name (case-insensitive); NULL when absent. */
const gw_hdr_t *mrpc__gw_hdr(const gw_http_msg_t *m, const char *name);

/* Builds the response of `r` and marks it ready: status line, the
 * Content-Length, Connection and Content-Type headers, `extra` (complete
 * header lines, may be NULL) and the body. */
void mrpc__gw_http_respond(gw_hreq_t *r, int status, const char *ctype,
                           const char *extra, size_t extra_len,
                           const char *body, size_t body_len);

/* Called by gateway_http_call.c once a forwarded request is answered
 * (r->ready set): writes what is ready, in order. */
void mrpc__gw_http_ready(gw_hreq_t *r);

/* Starts one request (gateway_http_call.c): answers it at once (a bad
 * request, a heartbeat) or forwards it. */
void mrpc__gw_http_start(mrpc_gateway_t *gw, gw_hreq_t *r,
                         const gw_http_msg_t *m);

/* Frees what a request owns (not the struct). */
void mrpc__gw_hreq_clear(gw_hreq_t *r);

#endif
