/* gateway_http.c: the gateway's HTTP/1.x connections (see gateway_http.h):
 * the foreign hook of the server, reading requests with the parser
 * (gateway_http_parse.c), the queue that answers pipelined requests in
 * order, keep-alive, timeouts, and closing. Each request read is handed to
 * gateway_http_call.c, which calls the request's `ready` back once its
 * answer is built.
 *
 * What is refused, and how: a malformed request line or header, or bytes
 * that are not HTTP at all, 400; a header block past max_header (or more
 * than GW_MAX_HEADERS lines), 431; Content-Length or chunked data past
 * max_frame (or chunk framing past GW_CHUNK_FRAMING), 413; a transfer
 * coding other than chunked, 501; both Content-Length and chunked, or a
 * malformed chunk, 400 (gateway_http_parse.h lists them all); an HTTP
 * version other than 1.0 and 1.1, 505; a request not complete http_request_ms after its first
 * byte, 408; a request read while the server shuts down, 503. Each of
 * these answers with Connection: close and closes. A connection idle for
 * http_idle_ms (no request, not even part of one) is closed silently.
 *
 * Each request from parsing to its answer written is work on its
 * connection (mrpc_conn_work_begin), so the server's graceful shutdown
 * waits for it and writes its answer before closing.
 *
 * A connection's state (gw_hconn_t) holds the connection's memory
 * (mrpc_conn_hold) from its first byte until it is closed and no request
 * of it is still forwarded. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "gateway/gateway_http.h"

struct gw_hconn_s {
  mrpc_gateway_t *gw;
  mrpc_conn_t *conn;      /* held (mrpc_conn_hold); hc_free releases it */
  mrpc_buf_t in;          /* bytes received, requests start at `pos`;
                             hc_free frees it */
  size_t pos;
  gw_http_scan_t scan;    /* the parser's state for the request at pos */
  gw_hreq_t *head, *tail; /* requests not yet answered, in order; each
                             freed by hreq_free once written, or by
                             hc_free */
  size_t nq;
  int closed;             /* the connection has closed */
  int stop;               /* read no further request */
  int continued;          /* 100 Continue sent for the request at pos */
  int pumping, again, doomed;
  unsigned ending;        /* answered requests whose work is to end */
  uint64_t mark;          /* uv_now: idle since, with nothing in `in`; or
                             when the request in `in` began to come */
  gw_hconn_t *prev, *next;
};

/* ---- responses ------------------------------------------------------------- */

/* An error of the connection itself: text/plain, and the connection closes
 * after it. */
static void respond_fatal(gw_hreq_t *r, int status, const char *why) {
  char body[200];
  int n = snprintf(body, sizeof body, "%s\n", why ? why : mrpc__gw_http_reason(status));
  r->keep = 0;
  mrpc__gw_http_respond(r, status, "text/plain; charset=utf-8", NULL, 0, body,
                        (size_t)n);
}

/* ---- the queue -------------------------------------------------------------- */

static void pump(gw_hconn_t *hc);

/* A forwarded request's answer is ready: write what is ready, in order. */
static void on_ready(gw_hreq_t *r) { pump(r->hc); }

static gw_hreq_t *hreq_push(gw_hconn_t *hc) {
  gw_hreq_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->hc = hc;
  r->ready_cb = on_ready;
  if (hc->tail) hc->tail->next = r;
  else hc->head = r;
  hc->tail = r;
  hc->nq++;
  return r;
}

/* The work of answered requests ends once their connection's writes are
 * queued (ending it may start the server's shutdown flush, which closes
 * the connection as soon as nothing is left to write). */
static void end_work(gw_hconn_t *hc) {
  for (; hc->ending; hc->ending--) mrpc_conn_work_end(hc->conn);
}

static void hreq_free(gw_hreq_t *r) {
  if (r->working) r->hc->ending++;
  mrpc__gw_hreq_clear(r);
  mrpc_buf_free(&r->resp);
  free(r);
}

static void hc_free(gw_hconn_t *hc) {
  mrpc_gateway_t *gw = hc->gw;
  gw_hreq_t *r;
  while ((r = hc->head)) {
    hc->head = r->next;
    hreq_free(r);
  }
  end_work(hc);
  if (hc->prev) hc->prev->next = hc->next;
  else gw->hconns = hc->next;
  if (hc->next) hc->next->prev = hc->prev;
  if (--gw->nhconns == 0 && !gw->closing) uv_timer_stop(&gw->sweep);
  mrpc_buf_free(&hc->in);
  mrpc_conn_set_data(hc->conn, NULL);
  mrpc_conn_release(hc->conn);
  free(hc);
}

/* Reads the requests that are complete, up to max_pipeline unanswered. */
static void read_requests(gw_hconn_t *hc) {
  mrpc_gateway_t *gw = hc->gw;
  gw_http_msg_t m;
  gw_hreq_t *r;
  int rc;
  while (!hc->stop && !hc->closed && !gw->closing && hc->nq < gw->opts.max_pipeline) {
    const char *p = hc->in.data + hc->pos;
    size_t n = hc->in.len - hc->pos;
    size_t blank = mrpc__gw_http_blank(p, n);
    p += blank;
    n -= blank;
    hc->pos += blank;
    if (n == 0) break;
    rc = mrpc__gw_http_parse(p, n, &hc->scan, gw->opts.max_header,
                             gw->opts.limits.max_frame, &m);
    if (rc == 0) {
      if (m.head_len && m.expect_continue && !hc->continued && !hc->head) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        hc->continued = 1;
        mrpc_conn_write(hc->conn, cont, sizeof cont - 1);
      }
      break;
    }
    if (!(r = hreq_push(hc))) {
      hc->stop = 1;
      mrpc_conn_close(hc->conn);
      break;
    }
    gw->http_requests++;
    r->minor = m.minor;
    if (rc < 0) {
      hc->stop = 1;
      respond_fatal(r, -rc, m.err);
      break;
    }
    if (mrpc_conn_work_begin(hc->conn) < 0) {
      hc->stop = 1;
      respond_fatal(r, 503, "server is shutting down");
      break;
    }
    r->working = 1;
    r->keep = m.keep;
    if (!m.keep) hc->stop = 1;
    hc->pos += m.msg_len;
    memset(&hc->scan, 0, sizeof hc->scan);
    hc->continued = 0;
    mrpc__gw_http_start(gw, r, &m);
  }
  if (hc->pos) {
    mrpc_buf_consume(&hc->in, hc->pos);
    hc->pos = 0;
    hc->mark = uv_now(gw->loop); /* what is left began to come by now */
  }
}

/* Writes the answers that are ready, in order, and reads further requests
 * while there is room; frees the connection's state once it is closed and
 * nothing of it is in flight. Re-entrant calls (a request answered at
 * once while reading) just ask the outer call to go round again. */
static void pump(gw_hconn_t *hc) {
  gw_hreq_t *r;
  if (hc->pumping) {
    hc->again = 1;
    return;
  }
  hc->pumping = 1;
  do {
    hc->again = 0;
    while ((r = hc->head) && r->ready) {
      if (!hc->closed && r->resp.len)
        mrpc_conn_write(hc->conn, r->resp.data, r->resp.len);
      if (!r->keep && !hc->closed) {
        hc->stop = 1;
        mrpc_conn_close(hc->conn);
      }
      hc->head = r->next;
      if (!hc->head) hc->tail = NULL;
      hc->nq--;
      hreq_free(r);
    }
    read_requests(hc);
    if (hc->head && hc->head->ready) hc->again = 1; /* answered at once */
  } while (hc->again);
  hc->pumping = 0;
  end_work(hc);
  if (hc->doomed || (hc->closed && !hc->head)) hc_free(hc);
  else if (!hc->head && hc->in.len == 0) hc->mark = uv_now(hc->gw->loop);
}

/* ---- timeouts ---------------------------------------------------------------- */

/* Connections with requests in flight are left alone (their forwards have
 * their own timeouts); the rest are timed from their mark. */
static void on_sweep(uv_timer_t *t) {
  mrpc_gateway_t *gw = t->data;
  const mrpc_gateway_opts_t *o = &gw->opts;
  uint64_t now = uv_now(gw->loop);
  gw_hconn_t *hc, *next;
  gw_hreq_t *r;
  for (hc = gw->hconns; hc; hc = next) {
    next = hc->next;
    if (hc->head || hc->closed || hc->stop || hc->pumping) continue;
    if (hc->in.len == 0) {
      if (now - hc->mark < o->http_idle_ms) continue;
      hc->stop = 1;
      mrpc_conn_close(hc->conn);
    } else if (now - hc->mark >= o->http_request_ms) {
      hc->stop = 1;
      if (!(r = hreq_push(hc))) {
        mrpc_conn_close(hc->conn);
        continue;
      }
      r->minor = 1;
      respond_fatal(r, 408, "the request did not come whole within http_request_ms");
      pump(hc);
    }
  }
}

/* Sweeps a few times per the shorter timeout, at most once a second. */
static void sweep_start(mrpc_gateway_t *gw) {
  uint64_t every = gw->opts.http_idle_ms < gw->opts.http_request_ms
                       ? gw->opts.http_idle_ms : gw->opts.http_request_ms;
  every /= 4;
  if (every < 10) every = 10;
  if (every > 1000) every = 1000;
  uv_timer_start(&gw->sweep, on_sweep, every, every);
}

/* ---- the hooks -------------------------------------------------------------- */

void mrpc__gw_http_on_data(mrpc_conn_t *c, const char *data, size_t len,
                           void *udata) {
  mrpc_gateway_t *gw = udata;
  gw_hconn_t *hc = mrpc_conn_get_data(c);
  /* One request's worth as sent: a head, max_frame of body, and what a
   * chunked body may add (GW_CHUNK_FRAMING plus half its data), with room
   * for one read past it, so that the parser sees what is too large and
   * answers 413 before this cuts the connection off. */
  size_t cap = (size_t)gw->opts.max_header + gw->opts.limits.max_frame +
               gw->opts.limits.max_frame / 2 + GW_CHUNK_FRAMING + 65536;
  if (!data) {
    if (!hc) return;
    hc->closed = 1;
    pump(hc);
    return;
  }
  if (!hc) {
    if (!(hc = calloc(1, sizeof *hc))) {
      mrpc_conn_close(c);
      return;
    }
    hc->gw = gw;
    hc->conn = c;
    mrpc_conn_hold(c);
    mrpc_conn_set_data(c, hc);
    hc->next = gw->hconns;
    if (gw->hconns) gw->hconns->prev = hc;
    gw->hconns = hc;
    if (gw->nhconns++ == 0) sweep_start(gw);
  }
  if (hc->stop || hc->closed) return;
  if (hc->in.len == 0) hc->mark = uv_now(gw->loop); /* a request begins */
  /* Requests read ahead past max_pipeline wait in `in`; a peer that keeps
   * sending past one whole request's worth is cut off. */
  if (hc->in.len + len > cap || mrpc_buf_append(&hc->in, data, len) < 0) {
    hc->stop = 1;
    mrpc_conn_close(c);
    return;
  }
  pump(hc);
}

/* The gateway is closing: every forwarded request has been answered with
 * 503 by now; what is ready is written, then each connection closes. */
void mrpc__gw_http_close_all(mrpc_gateway_t *gw) {
  gw_hconn_t *hc, *next;
  for (hc = gw->hconns; hc; hc = next) {
    next = hc->next;
    hc->stop = 1;
    if (hc->pumping) {
      hc->doomed = 1; /* freed when the pump running below us returns */
      continue;
    }
    hc->pumping = 1;
    while (hc->head && hc->head->ready) {
      gw_hreq_t *r = hc->head;
      if (!hc->closed && r->resp.len) mrpc_conn_write(hc->conn, r->resp.data, r->resp.len);
      hc->head = r->next;
      hreq_free(r);
    }
    if (!hc->closed) mrpc_conn_close(hc->conn);
    hc_free(hc);
  }
}
