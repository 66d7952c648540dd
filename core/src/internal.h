/* internal.h: helpers shared inside libmoonrpc (prefix mrpc__). */
#ifndef MOONRPC_INTERNAL_H
#define MOONRPC_INTERNAL_H

#include <stdarg.h>
#include <uv.h>
#include "moonrpc.h"

int mrpc__hostport(const char *hp, char *host, size_t hlen, int *port);
int mrpc__sockaddr(const char *hp, struct sockaddr_storage *ss, char *host,
                   size_t hlen, int *port);
int mrpc__sockname(const struct sockaddr_storage *ss, char *buf, size_t len);
void mrpc__log(mrpc_log_fn fn, void *udata, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
char *mrpc__strndup(const char *s, size_t n);
/* base64 (b64.c): fresh NUL-terminated strings; the decoder returns NULL
 * for input that is not base64. */
char *mrpc__b64_enc(const char *s, size_t n);
char *mrpc__b64_dec(const char *s);
/* Go's url.QueryUnescape (selector_meta.c): s[0..n) into `out`, which has
 * room for n bytes and may be `s` itself; "+" is a space, "%XX" a byte.
 * 0, or -1 for a '%' without two hex digits. */
int mrpc__query_unescape(const char *s, size_t n, char *out, size_t *outn);

#endif
