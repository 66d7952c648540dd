/* gateway_http.c: the gateway's HTTP/1.x connections (see gateway_http.h):
 * the foreign hook of the server, a bounded request parser, the queue
 * that answers pipelined requests in order, keep-alive, and closing.
 *
 * What is refused, and how: a malformed request line or header, or bytes
 * that are not HTTP at all, 400; a header block past max_header (or more
 * than GW_MAX_HEADERS lines), 431; Content-Length past max_frame, 413;
 * Transfer-Encoding (chunked bodies), 501; an HTTP version other than 1.0
 * and 1.1, 505; a request not complete http_request_ms after its first
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
  mrpc_conn_t *conn;
  mrpc_buf_t in;          /* bytes received; requests start at `pos` */
  size_t pos;
  size_t scan;            /* where the blank-line search resumes (from pos) */
  gw_hreq_t *head, *tail; /* requests not yet answered, in order */
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

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

void mrpc__gw_http_respond(gw_hreq_t *r, int status, const char *ctype,
                           const char *extra, size_t extra_len,
                           const char *body, size_t body_len) {
  char head[512];
  int n;
  const char *conn = !r->keep ? "Connection: close\r\n"
                     : r->minor == 0 ? "Connection: keep-alive\r\n" : "";
  n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\n%s%s%s%s",
               status, reason(status), body_len, conn, ctype ? "Content-Type: " : "",
               ctype ? ctype : "", ctype ? "\r\n" : "");
  r->resp.len = 0;
  if (mrpc_buf_reserve(&r->resp, (size_t)n + extra_len + 2 + body_len) < 0) {
    /* No memory for the answer: the connection ends with this request. */
    r->keep = 0;
  } else {
    mrpc_buf_append(&r->resp, head, (size_t)n);
    if (extra_len) mrpc_buf_append(&r->resp, extra, extra_len);
    mrpc_buf_append(&r->resp, "\r\n", 2);
    if (body_len) mrpc_buf_append(&r->resp, body, body_len);
  }
  r->ready = 1;
}

/* An error of the connection itself: text/plain, and the connection closes
 * after it. */
static void respond_fatal(gw_hreq_t *r, int status, const char *why) {
  char body[200];
  int n = snprintf(body, sizeof body, "%s\n", why ? why : reason(status));
  r->keep = 0;
  mrpc__gw_http_respond(r, status, "text/plain; charset=utf-8", NULL, 0, body,
                        (size_t)n);
}

/* ---- the parser ------------------------------------------------------------- */

static int is_tchar(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

const gw_hdr_t *mrpc__gw_hdr(const gw_http_msg_t *m, const char *name) {
  size_t i, n = strlen(name);
  for (i = 0; i < m->nh; i++)
    if (m->h[i].nlen == n && strncasecmp(m->h[i].name, name, n) == 0) return &m->h[i];
  return NULL;
}

/* 1 when the comma-separated list `v` holds `tok` (case-insensitive). */
static int has_token(const char *v, size_t n, const char *tok) {
  size_t i = 0, t = strlen(tok);
  while (i < n) {
    size_t s, e;
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    s = i;
    while (i < n && v[i] != ',') i++;
    e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e - s == t && strncasecmp(v + s, tok, t) == 0) return 1;
  }
  return 0;
}

/* The length of the line at p (without its CR LF or LF) and, in *next,
 * where the following line starts. */
static size_t line_at(const char *p, const char *end, const char **next) {
  const char *nl = memchr(p, '\n', (size_t)(end - p));
  size_t n = (size_t)(nl - p);
  *next = nl + 1;
  if (n && p[n - 1] == '\r') n--;
  return n;
}

static int parse_request_line(gw_http_msg_t *m, const char *p, size_t n) {
  const char *sp1 = memchr(p, ' ', n), *sp2;
  size_t i;
  if (!sp1 || sp1 == p) return -400;
  m->method = p;
  m->method_len = (size_t)(sp1 - p);
  for (i = 0; i < m->method_len; i++)
    if (!is_tchar((unsigned char)p[i])) return -400;
  sp2 = memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1));
  if (!sp2 || sp2 == sp1 + 1) return -400;
  m->target = sp1 + 1;
  m->target_len = (size_t)(sp2 - m->target);
  for (i = 0; i < m->target_len; i++)
    if ((unsigned char)m->target[i] <= ' ' || m->target[i] == 0x7f) return -400;
  p = sp2 + 1;
  n = (size_t)(m->method + n - p);
  if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' ||
      p[5] > '9' || p[7] < '0' || p[7] > '9')
    return -400;
  if (p[5] != '1' || (p[7] != '0' && p[7] != '1')) return -505;
  m->minor = p[7] - '0';
  return 0;
}

/* Content-Length, Transfer-Encoding, Connection and Expect. */
static int parse_framing(gw_http_msg_t *m, uint32_t max_body) {
  const gw_hdr_t *cl = NULL;
  size_t i, j;
  m->body_len = 0;
  m->keep = m->minor == 1;
  for (i = 0; i < m->nh; i++) {
    const gw_hdr_t *h = &m->h[i];
    if (h->nlen == 17 && strncasecmp(h->name, "Transfer-Encoding", 17) == 0) {
      m->err = "Transfer-Encoding (chunked bodies) is not supported: send Content-Length";
      return -501;
    }
    if (h->nlen == 14 && strncasecmp(h->name, "Content-Length", 14) == 0) {
      if (h->vlen == 0 || h->vlen > 19) goto bad_length;
      for (j = 0; j < h->vlen; j++)
        if (h->val[j] < '0' || h->val[j] > '9') goto bad_length;
      if (cl && (cl->vlen != h->vlen || memcmp(cl->val, h->val, h->vlen) != 0))
        goto bad_length;
      cl = h;
    } else if (h->nlen == 10 && strncasecmp(h->name, "Connection", 10) == 0) {
      if (has_token(h->val, h->vlen, "close")) m->keep = 0;
      else if (has_token(h->val, h->vlen, "keep-alive")) m->keep = 1;
    } else if (h->nlen == 6 && strncasecmp(h->name, "Expect", 6) == 0) {
      if (h->vlen == 12 && strncasecmp(h->val, "100-continue", 12) == 0)
        m->expect_continue = 1;
    }
  }
  if (cl) {
    uint64_t v = 0;
    for (j = 0; j < cl->vlen; j++) v = v * 10 + (uint64_t)(cl->val[j] - '0');
    if (v > max_body) {
      m->err = "the body is larger than max_frame";
      return -413;
    }
    m->body_len = (size_t)v;
  }
  return 0;
bad_length:
  m->err = "bad Content-Length";
  return -400;
}

/* Parses the head of the request at p[0..n). Returns 1 once the whole
 * request (its body too) is there, 0 when more bytes are needed (with
 * m->head_len set once the head is complete), or -status. */
static int parse(gw_hconn_t *hc, const char *p, size_t n, gw_http_msg_t *m) {
  const mrpc_gateway_opts_t *o = &hc->gw->opts;
  const char *end, *line, *next;
  size_t i, len;
  int rc;
  memset(m, 0, offsetof(gw_http_msg_t, h));
  m->nh = 0;
  m->err = NULL;
  /* Refuse what is not HTTP as soon as it shows: the method is a token. */
  for (i = 0; i < n && p[i] != ' '; i++) {
    if (!is_tchar((unsigned char)p[i]) || i >= 32) {
      m->err = "this is not an HTTP request";
      return -400;
    }
  }
  /* Find the blank line that ends the head, resuming where the last read
   * left off (a head that trickles in is scanned once, not per read). */
  for (i = hc->scan; i < n; i++) {
    if (p[i] != '\n') continue;
    if ((i >= 1 && p[i - 1] == '\n') || (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n'))
      break;
  }
  if (i >= n) {
    hc->scan = n;
    if (n > o->max_header) {
      m->err = "the request head is larger than max_header";
      return -431;
    }
    return 0;
  }
  m->head_len = i + 1;
  if (m->head_len > o->max_header) {
    m->err = "the request head is larger than max_header";
    return -431;
  }
  end = p + m->head_len;
  len = line_at(p, end, &next);
  if ((rc = parse_request_line(m, p, len)) < 0) {
    m->err = rc == -505 ? "only HTTP/1.0 and HTTP/1.1 are served"
                        : "malformed request line";
    return rc;
  }
  for (line = next; line < end; line = next) {
    const char *colon, *v, *ve;
    len = line_at(line, end, &next);
    if (len == 0) break; /* the blank line */
    if (line[0] == ' ' || line[0] == '\t') {
      m->err = "folded header lines are not accepted";
      return -400;
    }
    colon = memchr(line, ':', len);
    if (!colon || colon == line) {
      m->err = "malformed header line";
      return -400;
    }
    for (v = line; v < colon; v++)
      if (!is_tchar((unsigned char)*v)) {
        m->err = "malformed header name";
        return -400;
      }
    if (m->nh == GW_MAX_HEADERS) {
      m->err = "too many header lines";
      return -431;
    }
    v = colon + 1;
    ve = line + len;
    while (v < ve && (*v == ' ' || *v == '\t')) v++;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
    m->h[m->nh].name = line;
    m->h[m->nh].nlen = (size_t)(colon - line);
    m->h[m->nh].val = v;
    m->h[m->nh].vlen = (size_t)(ve - v);
    m->nh++;
  }
  if ((rc = parse_framing(m, o->limits.max_frame)) < 0) return rc;
  if (n - m->head_len < m->body_len) return 0;
  m->body = p + m->head_len;
  return 1;
}

/* ---- the queue -------------------------------------------------------------- */

static gw_hreq_t *hreq_push(gw_hconn_t *hc) {
  gw_hreq_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->hc = hc;
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
    /* Empty lines before a request are ignored (RFC 9112, 2.2). */
    while (n && (*p == '\r' || *p == '\n')) {
      p++;
      n--;
      hc->pos++;
    }
    if (n == 0) break;
    rc = parse(hc, p, n, &m);
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
    hc->pos += m.head_len + m.body_len;
    hc->scan = 0;
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

void mrpc__gw_http_ready(gw_hreq_t *r) { pump(r->hc); }

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
  size_t cap = (size_t)gw->opts.max_header + gw->opts.limits.max_frame + 4096;
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
