/* gateway_http_call.c: one HTTP request as a forwarded call, and its
 * outcome as a response, in the gateway's two HTTP styles.
 *
 * rpcx's convention (a request with X-RPCX-ServicePath, -ServiceMethod or
 * -SerializeType): the service comes from X-RPCX-ServicePath or else the
 * path, the method from X-RPCX-ServiceMethod, the serialize type from
 * X-RPCX-SerializeType, the metadata from X-RPCX-Meta (a URL query string,
 * parsed as Go's url.ParseQuery; the first value of a key wins), an
 * Authorization header becomes __AUTH, X-RPCX-Oneway and X-RPCX-Heartbeat
 * are honoured, a gzip Content-Encoding is inflated and forwarded gzipped.
 * The body is the payload. The answer carries X-RPCX-Version,
 * -MessageStatusType (Normal or Error), -SerializeType, -MessageID (the
 * caller's), -ServicePath, -ServiceMethod, -Meta (URL-encoded) and
 * -ErrorMessage; its body is the reply's payload. rpcx also names an
 * X-RPCX-MesssageType header (sic, three s's; server/converter.go) that its
 * gateways neither read nor write; neither does this one.
 *
 * JSON (anything else): POST /Service/Method, the body a JSON value (an
 * empty body is sent as null); PUT too, which is what `curl -T -` sends, forwarded with serialize type JSON; the
 * answer is the reply's JSON, or {"error": "..."}.
 *
 * Statuses, both styles: 200 a reply; 500 an error the service returned,
 * but 404 for rpcx's "can't find service/method"; 404 no instance of the
 * service; 400 a bad request or service name; 405 a method not allowed;
 * 413 a gzip body past max_decompressed; 415 an unknown Content-Encoding;
 * 502 the instance could not be reached; 503 the gateway is busy or
 * closing; 504 the call timed out.
 *
 * The response bytes (status line, Content-Length, Connection) are built
 * here too, for gateway_http.c's own refusals as well. A forwarded
 * request's answer is reported through r->ready_cb. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cjson/cJSON.h>
#include "gateway/gateway_http.h"

#define META_AUTH_LEN (sizeof MRPC_META_AUTH - 1)

/* ---- small codecs ----------------------------------------------------------- */

/* Go's url.QueryEscape. */
static int escape(mrpc_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789ABCDEF";
  size_t i;
  int rc = 0;
  for (i = 0; i < n && rc == 0; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '_' || c == '.' || c == '~') {
      rc = mrpc_buf_append(b, s + i, 1);
    } else if (c == ' ') {
      rc = mrpc_buf_append(b, "+", 1);
    } else {
      char e[3] = {'%', hex[c >> 4], hex[c & 15]};
      rc = mrpc_buf_append(b, e, 3);
    }
  }
  return rc;
}

static int json_string(mrpc_buf_t *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i;
  int rc = mrpc_buf_append(b, "\"", 1);
  for (i = 0; i < n && rc == 0; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      rc = mrpc_buf_append(b, e, 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      rc = mrpc_buf_append(b, e, 6);
    } else {
      rc = mrpc_buf_append(b, s + i, 1);
    }
  }
  if (rc == 0) rc = mrpc_buf_append(b, "\"", 1);
  return rc;
}

/* A header line whose value came from elsewhere (an error text): control
 * characters become spaces, so nothing can end the line early. */
static int header_line(mrpc_buf_t *b, const char *name, const char *v, size_t n) {
  size_t i, start;
  int rc = mrpc_buf_append(b, name, strlen(name));
  if (rc == 0) rc = mrpc_buf_append(b, ": ", 2);
  start = b->len;
  if (rc == 0) rc = mrpc_buf_append(b, v, n);
  if (rc == 0) {
    for (i = start; i < b->len; i++)
      if ((unsigned char)b->data[i] < 0x20 || b->data[i] == 0x7f) b->data[i] = ' ';
    rc = mrpc_buf_append(b, "\r\n", 2);
  }
  return rc;
}

static int is_error_key(const mrpc_meta_t *m) {
  return m->key_len == sizeof MRPC_META_ERROR - 1 &&
         memcmp(m->key, MRPC_META_ERROR, m->key_len) == 0;
}

/* X-RPCX-Meta: the reply's metadata (but __rpcx_error__) as a query. */
static int meta_header(mrpc_buf_t *b, const mrpc_frame_t *reply) {
  size_t i, n = 0;
  int rc = 0;
  if (!reply) return 0;
  for (i = 0; i < reply->meta_count && rc == 0; i++) {
    const mrpc_meta_t *m = &reply->meta[i];
    if (is_error_key(m)) continue;
    rc = n ? mrpc_buf_append(b, "&", 1) : mrpc_buf_append(b, "X-RPCX-Meta: ", 13);
    n++;
    if (rc == 0) rc = escape(b, m->key, m->key_len);
    if (rc == 0) rc = mrpc_buf_append(b, "=", 1);
    if (rc == 0) rc = escape(b, m->val, m->val_len);
  }
  if (rc == 0 && n) rc = mrpc_buf_append(b, "\r\n", 2);
  return rc;
}

/* ---- the answers ------------------------------------------------------------- */

const char *mrpc__gw_http_reason(int status) {
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
               status, mrpc__gw_http_reason(status), body_len, conn,
               ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "");
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

static int outcome_status(int outcome) {
  switch (outcome) {
  case GW_ENOINST: return 404;
  case GW_ETIMEOUT: return 504;
  case GW_ETRANSPORT: return 502;
  case GW_EBADNAME: return 400;
  default: return 503; /* GW_ECLOSED, GW_EBUSY */
  }
}

static const char *ctype_of(int serialize) {
  switch (serialize) {
  case MRPC_SERIALIZE_JSON: return "application/json";
  case MRPC_SERIALIZE_MSGPACK: return "application/x-msgpack";
  case MRPC_SERIALIZE_PROTOBUF: return "application/x-protobuf";
  default: return "application/octet-stream";
  }
}

/* An answer in rpcx's convention. `err` (err_len bytes) is set for an
 * error; `body` is the payload; `more` (may be NULL) are further header
 * lines. */
static void rpcx_answer(gw_hreq_t *r, int status, const char *err, size_t err_len,
                        const mrpc_frame_t *reply, const char *body, size_t blen,
                        const char *more) {
  mrpc_buf_t h = {0};
  char line[64];
  int rc, n;
  n = snprintf(line, sizeof line, "X-RPCX-Version: %d\r\nX-RPCX-MessageStatusType: %s\r\n",
               reply ? reply->version : 0, err ? "Error" : "Normal");
  rc = mrpc_buf_append(&h, line, (size_t)n);
  n = snprintf(line, sizeof line, "X-RPCX-SerializeType: %d\r\n", r->call.serialize);
  if (rc == 0) rc = mrpc_buf_append(&h, line, (size_t)n);
  if (rc == 0 && r->msgid) rc = header_line(&h, "X-RPCX-MessageID", r->msgid, strlen(r->msgid));
  if (rc == 0 && r->call.service)
    rc = header_line(&h, "X-RPCX-ServicePath", r->call.service, r->call.service_len);
  if (rc == 0 && r->call.method)
    rc = header_line(&h, "X-RPCX-ServiceMethod", r->call.method, strlen(r->call.method));
  if (rc == 0) rc = meta_header(&h, reply);
  if (rc == 0 && err) rc = header_line(&h, "X-RPCX-ErrorMessage", err, err_len);
  if (rc == 0 && more) rc = mrpc_buf_append(&h, more, strlen(more));
  if (rc < 0) { /* out of memory: a bare 503 */
    status = 503;
    h.len = blen = 0;
  }
  mrpc__gw_http_respond(r, status, ctype_of(r->call.serialize), h.data, h.len, body, blen);
  mrpc_buf_free(&h);
}

static void json_error(gw_hreq_t *r, int status, const char *err, size_t err_len,
                       const char *extra) {
  mrpc_buf_t b = {0};
  int rc = mrpc_buf_append(&b, "{\"error\":", 9);
  if (rc == 0) rc = json_string(&b, err, err_len);
  if (rc == 0) rc = mrpc_buf_append(&b, "}", 1);
  mrpc__gw_http_respond(r, status, "application/json", extra, extra ? strlen(extra) : 0,
                        rc == 0 ? b.data : NULL, rc == 0 ? b.len : 0);
  mrpc_buf_free(&b);
}

static void json_answer(gw_hreq_t *r, const mrpc_frame_t *reply) {
  mrpc_buf_t h = {0};
  int rc = meta_header(&h, reply);
  mrpc__gw_http_respond(r, 200, "application/json", h.data, rc < 0 ? 0 : h.len,
                        reply->payload_len ? reply->payload : "null",
                        reply->payload_len ? reply->payload_len : 4);
  mrpc_buf_free(&h);
}

/* The gateway's completion of a forwarded HTTP request. */
static void on_done(void *owner, int outcome, const char *msg,
                    const mrpc_frame_t *reply) {
  gw_hreq_t *r = owner;
  const char *e = NULL;
  size_t elen = 0;
  int status;
  r->forwarded = 0;
  if (outcome == GW_REPLY) {
    e = reply ? mrpc_frame_error(reply, &elen) : NULL;
    status = !e ? 200 : mrpc__gw_is_not_found(e, elen) ? 404 : 500;
  } else {
    e = msg;
    elen = strlen(msg);
    status = outcome_status(outcome);
  }
  if (r->style == GW_STYLE_JSON) {
    if (e) json_error(r, status, e, elen, NULL);
    else if (reply) json_answer(r, reply);
    else mrpc__gw_http_respond(r, 200, "application/json", NULL, 0, "null", 4);
  } else {
    rpcx_answer(r, status, e, elen, reply, reply ? reply->payload : NULL,
                reply ? reply->payload_len : 0, NULL);
  }
  r->ready_cb(r);
}

/* ---- requests ------------------------------------------------------------------- */

void mrpc__gw_hreq_clear(gw_hreq_t *r) {
  mrpc_buf_free(&r->store);
  mrpc_buf_free(&r->body);
  free(r->meta);
  r->meta = NULL;
}

/* Copies n bytes into the store (reserved beforehand: nothing moves). */
static const char *keep(gw_hreq_t *r, const char *s, size_t n) {
  char *p = r->store.data + r->store.len;
  if (n) memcpy(p, s, n);
  p[n] = 0;
  r->store.len += n + 1;
  return p;
}

/* X-RPCX-Meta (and Authorization) into r->meta; -1 with *why on error. */
static int take_meta(mrpc_gateway_t *gw, gw_hreq_t *r, const gw_hdr_t *mh,
                     const gw_hdr_t *auth, const char **why) {
  size_t i, cap = 1, max = gw->opts.limits.max_meta_pairs;
  const char *s, *end;
  if (mh)
    for (i = 0; i < mh->vlen; i++) cap += mh->val[i] == '&';
  if (!(r->meta = calloc(cap + 1, sizeof *r->meta))) {
    *why = "out of memory";
    return -1;
  }
  for (s = mh ? mh->val : NULL, end = mh ? mh->val + mh->vlen : NULL; s && s < end;) {
    const char *amp = memchr(s, '&', (size_t)(end - s)), *seg_end = amp ? amp : end;
    const char *eq = memchr(s, '=', (size_t)(seg_end - s));
    char *k = r->store.data + r->store.len, *v;
    size_t kl, vl, j;
    if (memchr(s, ';', (size_t)(seg_end - s))) {
      *why = "X-RPCX-Meta: invalid semicolon separator in query";
      return -1;
    }
    if (seg_end > s) {
      if (mrpc__query_unescape(s, (size_t)((eq ? eq : seg_end) - s), k, &kl) < 0) goto bad;
      v = k + kl;
      if (eq && mrpc__query_unescape(eq + 1, (size_t)(seg_end - eq - 1), v, &vl) < 0) goto bad;
      if (!eq) vl = 0;
      for (j = 0; j < r->call.nmeta; j++)
        if (r->meta[j].key_len == kl && memcmp(r->meta[j].key, k, kl) == 0) break;
      if (j == r->call.nmeta) { /* the first value of a key wins */
        if (r->call.nmeta >= max) {
          *why = "X-RPCX-Meta: too many metadata pairs";
          return -1;
        }
        r->meta[j].key = k;
        r->meta[j].key_len = kl;
        r->meta[j].val = v;
        r->meta[j].val_len = vl;
        r->call.nmeta++;
        r->store.len += kl + vl;
      }
    }
    s = amp ? amp + 1 : end;
  }
  if (auth) { /* rpcx: Authorization becomes __AUTH */
    for (i = 0; i < r->call.nmeta; i++)
      if (r->meta[i].key_len == META_AUTH_LEN &&
          memcmp(r->meta[i].key, MRPC_META_AUTH, META_AUTH_LEN) == 0)
        break;
    r->meta[i].key = MRPC_META_AUTH;
    r->meta[i].key_len = META_AUTH_LEN;
    r->meta[i].val = keep(r, auth->val, auth->vlen);
    r->meta[i].val_len = auth->vlen;
    if (i == r->call.nmeta) r->call.nmeta++;
  }
  r->call.meta = r->meta;
  for (i = 0; i < r->call.nmeta; i++) { /* __ServerTimeout bounds the call */
    const mrpc_meta_t *m = &r->meta[i];
    uint64_t t = 0;
    size_t j;
    if (m->key_len != sizeof MRPC_META_TIMEOUT - 1 ||
        memcmp(m->key, MRPC_META_TIMEOUT, m->key_len) != 0 || m->val_len == 0 || m->val_len > 12)
      continue;
    for (j = 0; j < m->val_len && m->val[j] >= '0' && m->val[j] <= '9'; j++)
      t = t * 10 + (uint64_t)(m->val[j] - '0');
    if (j == m->val_len) r->call.timeout_ms = t;
  }
  return 0;
bad:
  *why = "X-RPCX-Meta: invalid URL escape";
  return -1;
}

/* Fills r->call from the request: service, method, metadata and payload
 * (inflated when gzipped). 0, or an HTTP status with *why. */
static int build_call(mrpc_gateway_t *gw, gw_hreq_t *r, const gw_http_msg_t *m,
                      const char *svc, size_t svc_len, const char *method,
                      size_t method_len, const char **why) {
  const gw_hdr_t *mh = mrpc__gw_hdr(m, "X-RPCX-Meta");
  const gw_hdr_t *auth = mrpc__gw_hdr(m, "Authorization");
  const gw_hdr_t *ce = mrpc__gw_hdr(m, "Content-Encoding");
  const gw_hdr_t *id = mrpc__gw_hdr(m, "X-RPCX-MessageID");
  size_t need = svc_len + method_len + m->body_len + 8 + (mh ? mh->vlen : 0) +
                (auth ? auth->vlen + 1 : 0) + (id ? id->vlen + 1 : 0);
  int rc;
  if (mrpc_buf_reserve(&r->store, need) < 0) {
    *why = "out of memory";
    return 503;
  }
  r->call.service = keep(r, svc, svc_len);
  r->call.service_len = svc_len;
  r->call.method = keep(r, method, method_len);
  if (id) {
    size_t i;
    for (i = 0; i < id->vlen && id->val[i] >= '0' && id->val[i] <= '9'; i++) {}
    if (id->vlen == 0 || id->vlen > 20 || i != id->vlen) {
      *why = "X-RPCX-MessageID is not a number";
      return 400;
    }
    r->msgid = keep(r, id->val, id->vlen);
  }
  if (take_meta(gw, r, mh, auth, why) < 0) return 400;
  { /* the body, contiguous (a chunked one's data end to end) */
    char *dst = r->store.data + r->store.len;
    r->call.len = mrpc__gw_http_body_copy(m, dst);
    dst[r->call.len] = 0;
    r->store.len += r->call.len + 1;
    r->call.payload = dst;
  }
  if (ce && !(ce->vlen == 8 && strncasecmp(ce->val, "identity", 8) == 0)) {
    if (!(ce->vlen == 4 && strncasecmp(ce->val, "gzip", 4) == 0)) {
      *why = "unsupported Content-Encoding (gzip and identity are)";
      return 415;
    }
    rc = mrpc_gzip_decompress(&r->body, r->call.payload, r->call.len,
                              gw->opts.limits.max_decompressed);
    if (rc < 0) {
      *why = rc == MRPC_EBOMB ? "the inflated body is larger than max_decompressed"
                              : "the gzip body is corrupt";
      return rc == MRPC_EBOMB ? 413 : 400;
    }
    r->call.payload = r->body.data ? r->body.data : "";
    r->call.len = r->body.len;
    r->call.gzip = 1;
  }
  return 0;
}

static void forward(mrpc_gateway_t *gw, gw_hreq_t *r) {
  r->forwarded = 1;
  if (mrpc__gw_forward(gw, &r->call, on_done, r) < 0) {
    r->forwarded = 0;
    on_done(r, GW_EBUSY, "rpcx: gateway: out of memory", NULL);
  }
}

/* The path of the target, without its query; an absolute URI loses its
 * scheme and authority. */
static void target_path(const gw_http_msg_t *m, const char **p, size_t *n) {
  const char *s = m->target, *e = m->target + m->target_len, *q;
  if (e - s > 7 && strncasecmp(s, "http://", 7) == 0) {
    s = memchr(s + 7, '/', (size_t)(e - s - 7));
    if (!s) s = e;
  }
  q = memchr(s, '?', (size_t)(e - s));
  *p = s;
  *n = (size_t)((q ? q : e) - s);
}

static int method_is(const gw_http_msg_t *m, const char *name) {
  return m->method_len == strlen(name) && memcmp(m->method, name, m->method_len) == 0;
}

static void start_rpcx(mrpc_gateway_t *gw, gw_hreq_t *r, const gw_http_msg_t *m) {
  const gw_hdr_t *sp = mrpc__gw_hdr(m, "X-RPCX-ServicePath");
  const gw_hdr_t *sm = mrpc__gw_hdr(m, "X-RPCX-ServiceMethod");
  const gw_hdr_t *st = mrpc__gw_hdr(m, "X-RPCX-SerializeType");
  const gw_hdr_t *hb = mrpc__gw_hdr(m, "X-RPCX-Heartbeat"), *ow = mrpc__gw_hdr(m, "X-RPCX-Oneway");
  const char *svc, *why = NULL;
  size_t svc_len, i;
  int status, ser = 0;
  r->style = GW_STYLE_RPCX;
  if (sp && sp->vlen) {
    svc = sp->val;
    svc_len = sp->vlen;
  } else {
    target_path(m, &svc, &svc_len);
    while (svc_len && *svc == '/') svc++, svc_len--;
  }
  if (!method_is(m, "POST") && !method_is(m, "PUT") && !method_is(m, "GET")) {
    status = 405, why = "rpcx's gateway takes GET, POST and PUT";
  } else if (!svc_len) {
    status = 400, why = "empty servicepath";
  } else if (!sm || !sm->vlen) {
    status = 400, why = "empty servicemethod";
  } else if (!st || !st->vlen || st->vlen > 2) {
    status = 400, why = "empty serialized type";
  } else {
    for (i = 0; i < st->vlen && st->val[i] >= '0' && st->val[i] <= '9'; i++)
      ser = ser * 10 + (st->val[i] - '0');
    status = i == st->vlen && ser <= 15 ? 0 : 400;
    if (status) why = "bad X-RPCX-SerializeType";
  }
  r->call.serialize = (uint8_t)ser;
  if (!status) status = build_call(gw, r, m, svc, svc_len, sm->val, sm->vlen, &why);
  if (status) {
    rpcx_answer(r, status, why, strlen(why), NULL, NULL, 0,
                status == 405 ? "Allow: GET, POST, PUT\r\n" : NULL);
    return;
  }
  if (hb && hb->vlen) { /* a heartbeat: the gateway answers it */
    rpcx_answer(r, 200, NULL, 0, NULL, r->call.payload, r->call.len, NULL);
    return;
  }
  r->call.oneway = ow && ow->vlen;
  forward(gw, r);
}

static void start_json(mrpc_gateway_t *gw, gw_hreq_t *r, const gw_http_msg_t *m) {
  const char *p, *slash, *why = NULL, *end;
  size_t n;
  int status;
  cJSON *doc;
  r->style = GW_STYLE_JSON;
  target_path(m, &p, &n);
  if (n < 4 || p[0] != '/' || !(slash = memchr(p + 1, '/', n - 1)) || slash == p + 1 ||
      slash == p + n - 1 || memchr(slash + 1, '/', (size_t)(p + n - slash - 1))) {
    static const char e[] = "rpcx: gateway: no such route: POST /Service/Method with a JSON body";
    json_error(r, 404, e, sizeof e - 1, NULL);
    return;
  }
  if (!method_is(m, "POST") && !method_is(m, "PUT")) {
    static const char e[] = "rpcx: gateway: use POST";
    json_error(r, 405, e, sizeof e - 1, "Allow: POST, PUT\r\n");
    return;
  }
  status = build_call(gw, r, m, p + 1, (size_t)(slash - p - 1), slash + 1,
                      (size_t)(p + n - slash - 1), &why);
  if (status) {
    json_error(r, status, why, strlen(why), NULL);
    return;
  }
  r->call.serialize = MRPC_SERIALIZE_JSON;
  for (n = 0; n < r->call.len && strchr(" \t\r\n", r->call.payload[n]); n++) {}
  if (n == r->call.len) { /* no body: null */
    r->call.payload = "null";
    r->call.len = 4;
  } else {
    doc = cJSON_ParseWithLengthOpts(r->call.payload, r->call.len, &end, 0);
    if (doc) {
      cJSON_Delete(doc);
      while (end < r->call.payload + r->call.len && strchr(" \t\r\n", *end)) end++;
    }
    if (!doc || end != r->call.payload + r->call.len) {
      static const char e[] = "rpcx: gateway: the body is not valid JSON";
      json_error(r, 400, e, sizeof e - 1, NULL);
      return;
    }
  }
  forward(gw, r);
}

void mrpc__gw_http_start(mrpc_gateway_t *gw, gw_hreq_t *r, const gw_http_msg_t *m) {
  if (mrpc__gw_hdr(m, "X-RPCX-ServicePath") || mrpc__gw_hdr(m, "X-RPCX-ServiceMethod") ||
      mrpc__gw_hdr(m, "X-RPCX-SerializeType"))
    start_rpcx(gw, r, m);
  else
    start_json(gw, r, m);
}
