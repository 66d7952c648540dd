/* gateway_http_parse.c: the HTTP/1.x request parser (see
 * gateway_http_parse.h), bounded: the method is checked as its bytes come
 * so that what is not HTTP is refused at once, the head by max_header and
 * GW_MAX_HEADERS, the body by max_body. Only Content-Length frames a body;
 * Transfer-Encoding is refused. It reads nothing but its arguments. */
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include "gateway/gateway_http_parse.h"

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

size_t mrpc__gw_http_blank(const char *p, size_t n) {
  size_t i = 0;
  while (i < n && (p[i] == '\r' || p[i] == '\n')) i++;
  return i;
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

/* The header lines of the head at p[0..head_len), after the request line,
 * into m->h. 0, or -status with m->err. */
static int parse_headers(gw_http_msg_t *m, const char *line, const char *end) {
  const char *next;
  size_t len;
  for (; line < end; line = next) {
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
  return 0;
}

int mrpc__gw_http_parse(const char *p, size_t n, size_t *scan, uint32_t max_header,
                        uint32_t max_body, gw_http_msg_t *m) {
  const char *end, *next;
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
  /* Find the blank line that ends the head, resuming where the last call
   * left off (a head that trickles in is scanned once, not per read). */
  for (i = *scan; i < n; i++) {
    if (p[i] != '\n') continue;
    if ((i >= 1 && p[i - 1] == '\n') || (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n'))
      break;
  }
  if (i >= n) {
    *scan = n;
    if (n > max_header) {
      m->err = "the request head is larger than max_header";
      return -431;
    }
    return 0;
  }
  m->head_len = i + 1;
  if (m->head_len > max_header) {
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
  if ((rc = parse_headers(m, next, end)) < 0) return rc;
  if ((rc = parse_framing(m, max_body)) < 0) return rc;
  if (n - m->head_len < m->body_len) return 0;
  m->body = p + m->head_len;
  return 1;
}
