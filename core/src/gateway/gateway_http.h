/* gateway_http.h (internal): the gateway's HTTP/1.x side, in three layers.
 *
 * gateway_http_parse.c (lowest, pure) parses a request's bytes.
 * gateway_http_call.c turns one parsed request into a forwarded call
 * (rpcx's X-RPCX-* convention, or POST /Service/Method with JSON) through
 * gateway_fwd.c, and the outcome into a response; it reports an answer
 * built later through the request's `ready_cb`. gateway_http.c (top) owns
 * the connections: it reads requests with the parser, keeps them in
 * arrival order and writes their responses in that order (pipelining),
 * with keep-alive. */
#ifndef MOONRPC_GATEWAY_HTTP_H
#define MOONRPC_GATEWAY_HTTP_H

#include "gateway/gateway.h"
#include "gateway/gateway_http_parse.h"

/* One request on a connection, from parsing to its response written.
 * Owned by its connection's queue (gateway_http.c frees it, and what it
 * owns through mrpc__gw_hreq_clear); `store` and `body` hold what its call
 * points into, so the call stays valid while the gateway retries it. */
typedef struct gw_hreq_s {
  gw_hconn_t *hc;
  struct gw_hreq_s *next;
  /* Set by the connection: called once an answer built after
   * mrpc__gw_http_start returned (a forwarded call's) is ready. */
  void (*ready_cb)(struct gw_hreq_s *r);
  mrpc_buf_t resp;        /* the whole response, once ready (freed with
                             the request) */
  int ready;              /* resp is complete */
  int forwarded;          /* a call is in flight: the gateway completes it */
  int working;            /* counted by mrpc_conn_work_begin until freed */
  int keep, minor;
  int style;              /* GW_STYLE_* */
  gw_call_t call;
  mrpc_buf_t store;       /* service, method, metadata, payload copies
                             (mrpc__gw_hreq_clear frees it) */
  mrpc_buf_t body;        /* a gunzipped body (mrpc__gw_hreq_clear) */
  mrpc_meta_t *meta;      /* the call's metadata pairs (malloc'ed;
                             mrpc__gw_hreq_clear frees them) */
  const char *msgid;      /* X-RPCX-MessageID, NUL-terminated in store */
} gw_hreq_t;

enum { GW_STYLE_RPCX = 1, GW_STYLE_JSON = 2 };

/* gateway_http_call.c. The reason phrase of an HTTP status. */
const char *mrpc__gw_http_reason(int status);

/* Builds the response of `r` and marks it ready: status line, the
 * Content-Length, Connection and Content-Type headers, `extra` (complete
 * header lines, may be NULL) and the body. */
void mrpc__gw_http_respond(gw_hreq_t *r, int status, const char *ctype,
                           const char *extra, size_t extra_len,
                           const char *body, size_t body_len);

/* Starts one request: answers it at once (a bad request, a heartbeat:
 * r->ready is set on return) or forwards it (r->ready_cb is called once
 * the answer is ready, possibly before this returns). */
void mrpc__gw_http_start(mrpc_gateway_t *gw, gw_hreq_t *r,
                         const gw_http_msg_t *m);

/* Frees what a request owns (not the struct, nor `resp`). */
void mrpc__gw_hreq_clear(gw_hreq_t *r);

#endif
