/* base/base.h (internal): the bottom layer of libmoonrpc, which every other
 * folder may include. It holds what no subsystem owns: the error names
 * (error.c), logging through a host's sink, strndup and Go's
 * url.QueryUnescape (util.c), and base64 (b64.c). It calls nothing above
 * it: only libc and the public headers' types. */
#ifndef MOONRPC_BASE_H
#define MOONRPC_BASE_H

#include <stdarg.h>
#include <uv.h>
#include "moonrpc.h"

void mrpc__log(mrpc_log_fn fn, void *udata, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
char *mrpc__strndup(const char *s, size_t n);
/* base64 (b64.c): fresh NUL-terminated strings; the decoder returns NULL
 * for input that is not base64. */
char *mrpc__b64_enc(const char *s, size_t n);
char *mrpc__b64_dec(const char *s);
/* Go's url.QueryUnescape (util.c): s[0..n) into `out`, which has
 * room for n bytes and may be `s` itself; "+" is a space, "%XX" a byte.
 * 0, or -1 for a '%' without two hex digits. */
int mrpc__query_unescape(const char *s, size_t n, char *out, size_t *outn);

#endif
