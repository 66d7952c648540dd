/* util.c: the small helpers every layer of libmoonrpc shares: logging
 * through a host's sink, strndup, and Go's url.QueryUnescape (selector
 * metadata, the gateway's X-RPCX-Meta). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"

void mrpc__log(mrpc_log_fn fn, void *udata, int level, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (fn) fn(udata, level, msg);
  else fprintf(stderr, "moonrpc: %s\n", msg);
}

char *mrpc__strndup(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (!p) return NULL;
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int mrpc__query_unescape(const char *s, size_t n, char *out, size_t *outn) {
  size_t i, k = 0;

  for (i = 0; i < n; i++) {
    if (s[i] == '%') {
      int hi, lo;

      if (i + 2 >= n || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
        return -1;
      out[k++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[k++] = s[i] == '+' ? ' ' : s[i];
    }
  }
  *outn = k;
  return 0;
}
