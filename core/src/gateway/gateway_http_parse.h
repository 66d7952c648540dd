/* gateway_http_parse.h (internal): the gateway's HTTP/1.x request parser.
 *
 * A pure function over bytes, like hiredis's reader: no socket, no loop,
 * no gateway state. The caller feeds the bytes it has of one request; the
 * parser says whether the request is complete, incomplete (with how far it
 * scanned, so a head that trickles in is scanned once), or refused with the
 * HTTP status to answer and why. A body is framed by Content-Length or by
 * Transfer-Encoding: chunked; a chunked one is decoded incrementally too
 * (each chunk is read once, whatever the number of calls) and copied out
 * contiguous by mrpc__gw_http_body_copy. gateway_http.c drives it over each
 * connection's input; spec/core/gateway/test_http_parse.c tests it alone. */
#ifndef MOONRPC_GATEWAY_HTTP_PARSE_H
#define MOONRPC_GATEWAY_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define GW_MAX_HEADERS 100

/* A chunked body's framing (its size lines with their extensions, the CR LF
 * after each chunk's data, the last chunk and the trailer lines) may take
 * this many bytes plus half as many as the data so far; past that, 413.
 * Chunks of 10 bytes or more always fit; a body of tinier chunks fits
 * until its framing passes 16 KiB. It bounds what a connection buffers for
 * one chunked request: its head, max_body of data and the framing. */
#define GW_CHUNK_FRAMING 16384u

/* What the parser keeps between calls on one request: all zero for a new
 * request, then left as the parser sets it (the bytes before the offsets
 * must not change between calls). */
typedef struct gw_http_scan_s {
  size_t head;           /* where the search for the blank line resumes */
  size_t at;             /* chunked: where the next chunk-size line (or
                            trailer line) starts; 0 before the body */
  size_t data;           /* chunked: the data of the chunks before `at` */
  int trailers;          /* chunked: the last chunk is read; what follows
                            is trailer lines, then the blank line */
} gw_http_scan_t;

typedef struct gw_hdr_s {
  const char *name, *val;
  size_t nlen, vlen;
} gw_hdr_t;

/* One parsed request. Every pointer is into the bytes given to the parser
 * (nothing is owned): valid while those bytes are. */
typedef struct gw_http_msg_s {
  const char *method, *target, *body;
  size_t method_len, target_len;
  size_t body_len;       /* the body's length: Content-Length; chunked, its
                            data (so far, before the request is whole) */
  size_t head_len;       /* through the blank line */
  size_t msg_len;        /* the whole request as sent, once it is whole:
                            head, body (framing and trailers included) */
  int chunked;           /* Transfer-Encoding: chunked. `body` then points
                            at the body as sent, chunk sizes and all: copy
                            it out with mrpc__gw_http_body_copy */
  int minor;             /* HTTP/1.minor */
  int keep;              /* the connection stays open after the answer */
  int expect_continue;
  gw_hdr_t h[GW_MAX_HEADERS];
  size_t nh;
  const char *err;       /* why, for an error status (static text) */
} gw_http_msg_t;

/* Parses the request at p[0..n). Returns 1 once the whole request (its
 * body too) is there; 0 when more bytes are needed, with m->head_len set
 * once the head is complete (then chunked, keep and expect_continue are
 * known too, and body_len for Content-Length); or -status with m->err:
 *   -400 bytes that are not HTTP (as soon as the method shows it), a
 *        malformed request line, header line or name, a folded header, a
 *        bad or conflicting Content-Length; both Content-Length and
 *        Transfer-Encoding (RFC 9112, 6.3: a server may refuse it; we do,
 *        it is how requests are smuggled), chunked twice, Transfer-Encoding
 *        in an HTTP/1.0 request (6.1: its framing is faulty); in a chunked
 *        body, a chunk size that is not hex or overflows 64 bits, a bad
 *        chunk extension, a CR LF missing (after a size line, after a
 *        chunk's data, after a trailer line: bare LF is not taken there), a
 *        malformed trailer line;
 *   -431 a head past max_header bytes, or more than GW_MAX_HEADERS lines;
 *   -413 a Content-Length past max_body, chunks whose data passes
 *        max_body (refused at the size line that passes it), framing past
 *        GW_CHUNK_FRAMING plus half the data;
 *   -501 a transfer coding other than chunked (gzip, identity, ...);
 *   -505 an HTTP version other than 1.0 and 1.1.
 * Chunk extensions and trailer fields are read past and ignored. *scan is
 * the state between calls (see gw_http_scan_t). The request takes
 * m->msg_len bytes; a pipelined one follows. */
int mrpc__gw_http_parse(const char *p, size_t n, gw_http_scan_t *scan, uint32_t max_header,
                        uint32_t max_body, gw_http_msg_t *m);

/* Copies the body of a request the parser returned 1 for into out
 * (m->body_len bytes of room): as it is for Content-Length, the chunks'
 * data end to end for chunked. Returns m->body_len. */
size_t mrpc__gw_http_body_copy(const gw_http_msg_t *m, char *out);

/* The empty lines (CR and LF bytes) at p[0..n) before a request, which are
 * ignored (RFC 9112, 2.2): how many bytes to skip. */
size_t mrpc__gw_http_blank(const char *p, size_t n);

/* Looks a header up by name (case-insensitive); NULL when absent. */
const gw_hdr_t *mrpc__gw_hdr(const gw_http_msg_t *m, const char *name);

#endif
