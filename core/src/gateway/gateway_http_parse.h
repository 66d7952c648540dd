/* gateway_http_parse.h (internal): the gateway's HTTP/1.x request parser.
 *
 * A pure function over bytes, like hiredis's reader: no socket, no loop,
 * no gateway state. The caller feeds the bytes it has of one request; the
 * parser says whether the request is complete, incomplete (with how far it
 * scanned, so a head that trickles in is scanned once), or refused with the
 * HTTP status to answer and why. gateway_http.c drives it over each
 * connection's input; spec/core/gateway/test_http_parse.c tests it alone. */
#ifndef MOONRPC_GATEWAY_HTTP_PARSE_H
#define MOONRPC_GATEWAY_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAX_HEADERS 100

typedef struct gw_hdr_s {
  const char *name, *val;
  size_t nlen, vlen;
} gw_hdr_t;

/* One parsed request. Every pointer is into the bytes given to the parser
 * (nothing is owned): valid while those bytes are. */
typedef struct gw_http_msg_s {
  const char *method, *target, *body;
  size_t method_len, target_len, body_len;
  size_t head_len;       /* through the blank line */
  int minor;             /* HTTP/1.minor */
  int keep;              /* the connection stays open after the answer */
  int expect_continue;
  gw_hdr_t h[GW_MAX_HEADERS];
  size_t nh;
  const char *err;       /* why, for an error status (static text) */
} gw_http_msg_t;

/* Parses the request at p[0..n). Returns 1 once the whole request (its
 * body too) is there; 0 when more bytes are needed, with m->head_len set
 * once the head is complete (then body_len, keep and expect_continue are
 * known too); or -status with m->err:
 *   -400 bytes that are not HTTP (as soon as the method shows it), a
 *        malformed request line, header line or name, a folded header, a
 *        bad or conflicting Content-Length;
 *   -431 a head past max_header bytes, or more than GW_MAX_HEADERS lines;
 *   -413 a Content-Length past max_body;
 *   -501 Transfer-Encoding (chunked bodies);
 *   -505 an HTTP version other than 1.0 and 1.1.
 * *scan is where the search for the blank line resumes: 0 for a new
 * request, then left as the parser sets it between calls on the same
 * request (the bytes before it must not change). The request takes
 * head_len + body_len bytes; a pipelined one follows. */
int mrpc__gw_http_parse(const char *p, size_t n, size_t *scan, uint32_t max_header,
                        uint32_t max_body, gw_http_msg_t *m);

/* The empty lines (CR and LF bytes) at p[0..n) before a request, which are
 * ignored (RFC 9112, 2.2): how many bytes to skip. */
size_t mrpc__gw_http_blank(const char *p, size_t n);

/* Looks a header up by name (case-insensitive); NULL when absent. */
const gw_hdr_t *mrpc__gw_hdr(const gw_http_msg_t *m, const char *name);

#endif
