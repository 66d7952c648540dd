/* gateway_http_parse.c: the HTTP/1.x request parser (see
 * gateway_http_parse.h), bounded: the method is checked as its bytes come
 * so that what is not HTTP is refused at once, the head by max_header and
 * GW_MAX_HEADERS, the body by max_body. Content-Length or chunked frames a
 * body (another transfer coding is refused); a chunked body's framing is
 * strict (CR LF everywhere) and bounded by GW_CHUNK_FRAMING, and each of
 * its chunks is read once, by a scan kept between calls. It reads nothing
 * but its arguments. */
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

/* Transfer-Encoding's codings: 1 for chunked (once, alone); -status with
 * m->err otherwise. Repeated header lines are one list (RFC 9110, 5.3). */
static int transfer_codings(gw_http_msg_t *m) {
  size_t i, k, chunked = 0, codings = 0;
  for (i = 0; i < m->nh; i++) {
    const gw_hdr_t *h = &m->h[i];
    if (h->nlen != 17 || strncasecmp(h->name, "Transfer-Encoding", 17) != 0) continue;
    for (k = 0; k < h->vlen;) {
      size_t s, e;
      while (k < h->vlen && (h->val[k] == ' ' || h->val[k] == '\t' || h->val[k] == ',')) k++;
      if (k == h->vlen) break;
      s = k;
      while (k < h->vlen && h->val[k] != ',') k++;
      e = k;
      while (e > s && (h->val[e - 1] == ' ' || h->val[e - 1] == '\t')) e--;
      codings++;
      if (e - s == 7 && strncasecmp(h->val + s, "chunked", 7) == 0) {
        chunked++;
      } else {
        m->err = "only the chunked transfer coding is supported";
        return -501;
      }
    }
  }
  if (codings == 0) {
    m->err = "an empty Transfer-Encoding";
    return -400;
  }
  if (chunked > 1) {
    m->err = "chunked twice in Transfer-Encoding";
    return -400;
  }
  return 1;
}

/* Content-Length, Transfer-Encoding, Connection and Expect. */
static int parse_framing(gw_http_msg_t *m, uint32_t max_body) {
  const gw_hdr_t *cl = NULL;
  size_t i, j;
  int te = 0, rc;
  m->body_len = 0;
  m->keep = m->minor == 1;
  for (i = 0; i < m->nh; i++) {
    const gw_hdr_t *h = &m->h[i];
    if (h->nlen == 17 && strncasecmp(h->name, "Transfer-Encoding", 17) == 0) {
      te = 1;
    } else if (h->nlen == 14 && strncasecmp(h->name, "Content-Length", 14) == 0) {
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
  if (te) {
    if ((rc = transfer_codings(m)) < 0) return rc;
    if (cl) {
      m->err = "both Content-Length and Transfer-Encoding";
      return -400;
    }
    if (m->minor == 0) {
      m->err = "Transfer-Encoding in an HTTP/1.0 request";
      return -400;
    }
    m->chunked = 1;
    return 0;
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

/* ---- chunked bodies ------------------------------------------------------------ */

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* The chunk-size line at p[0..n) (without its CR LF): 1*HEXDIG, then
 * nothing, or BWS ";" and an extension, which is ignored but must hold no
 * control character. 0 with *size, or -400 with m->err. */
static int chunk_size(gw_http_msg_t *m, const char *p, size_t n, uint64_t *size) {
  uint64_t v = 0;
  size_t i;
  int d;
  for (i = 0; i < n && (d = hexval((unsigned char)p[i])) >= 0; i++) {
    if (v >> 60) {
      m->err = "a chunk size overflows";
      return -400;
    }
    v = v << 4 | (uint64_t)d;
  }
  if (i == 0) goto bad;
  if (i < n) { /* BWS then ";": whitespace alone does not end the line */
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    if (i == n || p[i] != ';') goto bad;
    for (; i < n; i++)
      if (((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f) goto bad;
  }
  *size = v;
  return 0;
bad:
  m->err = "a malformed chunk size line";
  return -400;
}

/* The framing allowed for `data` bytes of chunk data (GW_CHUNK_FRAMING). */
static int framing_past(size_t framing, size_t data) {
  return framing > GW_CHUNK_FRAMING + data / 2;
}

/* The line at p[at..n) ending in CR LF: its length without them, or
 * (size_t)-1 when its LF has not come yet, or -2 when the LF has no CR. */
static size_t crlf_line(const char *p, size_t at, size_t n) {
  const char *nl = memchr(p + at, '\n', n - at);
  if (!nl) return (size_t)-1;
  if (nl == p + at || nl[-1] != '\r') return (size_t)-2;
  return (size_t)(nl - (p + at)) - 1;
}

/* Reads the chunks and trailers at p[sc->at..n), each once: a chunk is
 * passed only when its data and CR LF are all there, so that `at` is
 * always the start of a line. 1 once the blank line after the trailers is
 * read (m->msg_len set), 0 for more bytes, -status with m->err. */
static int parse_chunks(const char *p, size_t n, gw_http_scan_t *sc, uint32_t max_body,
                        gw_http_msg_t *m) {
  const char *colon;
  uint64_t size;
  size_t len, i;
  int rc;
  if (sc->at < m->head_len) {
    sc->at = m->head_len;
    sc->data = 0;
    sc->trailers = 0;
  }
  for (;;) {
    size_t framing = sc->at - m->head_len - sc->data;
    m->body_len = sc->data;
    len = crlf_line(p, sc->at, n);
    if (len == (size_t)-1) { /* the line is still coming: bound it */
      if (framing_past(framing + (n - sc->at), sc->data)) goto too_much;
      return 0;
    }
    if (len == (size_t)-2) {
      m->err = sc->trailers ? "a trailer line without CR LF" : "a chunk size line without CR LF";
      return -400;
    }
    if (framing_past(framing + len + 2, sc->data)) goto too_much;
    if (sc->trailers) {
      if (len == 0) { /* the blank line: the end of the request */
        m->msg_len = sc->at + 2;
        return 1;
      }
      /* A trailer field is skipped, but it must look like one. */
      colon = memchr(p + sc->at, ':', len);
      for (i = sc->at; colon && i < (size_t)(colon - p); i++)
        if (!is_tchar((unsigned char)p[i])) colon = NULL;
      if (!colon || colon == p + sc->at) {
        m->err = "a malformed trailer line";
        return -400;
      }
      sc->at += len + 2;
      continue;
    }
    if ((rc = chunk_size(m, p + sc->at, len, &size)) < 0) return rc;
    if (size > (uint64_t)max_body - sc->data) {
      m->err = "the body is larger than max_frame";
      return -413;
    }
    if (size == 0) { /* the last chunk: trailers follow */
      sc->at += len + 2;
      sc->trailers = 1;
      continue;
    }
    i = sc->at + len + 2 + (size_t)size; /* where the data's CR LF goes */
    if (n > i && p[i] != '\r') goto no_crlf;
    if (n > i + 1 && p[i + 1] != '\n') goto no_crlf;
    if (n < i + 2) return 0;
    sc->data += (size_t)size;
    sc->at = i + 2;
  }
too_much:
  m->err = "the chunked body's framing (sizes, extensions, trailers) is too large";
  return -413;
no_crlf:
  m->err = "a chunk's data is not followed by CR LF";
  return -400;
}

size_t mrpc__gw_http_body_copy(const gw_http_msg_t *m, char *out) {
  const char *p = m->body, *nl;
  size_t size, done = 0;
  int d;
  if (!m->chunked) {
    if (m->body_len) memcpy(out, m->body, m->body_len);
    return m->body_len;
  }
  /* The parser has read this body whole: its sizes are hex, its lines end
   * in CR LF, and its data sum to body_len. */
  while (done < m->body_len) {
    for (size = 0; (d = hexval((unsigned char)*p)) >= 0; p++) size = size << 4 | (size_t)d;
    nl = memchr(p, '\n', (size_t)(m->body + m->msg_len - m->head_len - p));
    memcpy(out + done, nl + 1, size);
    done += size;
    p = nl + 1 + size + 2;
  }
  return done;
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

int mrpc__gw_http_parse(const char *p, size_t n, gw_http_scan_t *scan, uint32_t max_header,
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
  for (i = scan->head; i < n; i++) {
    if (p[i] != '\n') continue;
    if ((i >= 1 && p[i - 1] == '\n') || (i >= 2 && p[i - 1] == '\r' && p[i - 2] == '\n'))
      break;
  }
  if (i >= n) {
    scan->head = n;
    if (n > max_header) {
      m->err = "the request head is larger than max_header";
      return -431;
    }
    return 0;
  }
  scan->head = i; /* found: the next call finds it at once */
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
  m->body = p + m->head_len;
  if (m->chunked) return parse_chunks(p, n, scan, max_body, m);
  if (n - m->head_len < m->body_len) return 0;
  m->msg_len = m->head_len + m->body_len;
  return 1;
}
