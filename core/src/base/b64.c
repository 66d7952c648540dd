/* b64.c: standard base64 (RFC 4648, with padding), for etcd's JSON gateway
 * and the libkv values of rpcx's Redis registry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "base/base.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encodes n bytes into a fresh NUL-terminated string; NULL without memory. */
char *mrpc__b64_enc(const char *s, size_t n) {
  char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
  size_t i;
  if (!out) return NULL;
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint8_t)s[i] << 16 | (uint8_t)s[i + 1] << 8 | (uint8_t)s[i + 2];
    *o++ = b64[v >> 18]; *o++ = b64[v >> 12 & 63]; *o++ = b64[v >> 6 & 63]; *o++ = b64[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint8_t)s[i] << 16 | (i + 1 < n ? (uint8_t)s[i + 1] << 8 : 0);
    *o++ = b64[v >> 18]; *o++ = b64[v >> 12 & 63];
    *o++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
    *o++ = '=';
  }
  *o = 0;
  return out;
}

/* Decodes `s` into a fresh NUL-terminated string; NULL if not base64.
 * Padding may be missing (Go's RawStdEncoding); what follows a '=' must be
 * '=' too. The output takes at most 3 bytes per 4 characters, and up to
 * 2 more for a last group without its padding ("pVwPWE=": 7 characters,
 * 4 bytes), then the NUL. */
char *mrpc__b64_dec(const char *s) {
  size_t n = strlen(s), i;
  char *out = malloc(n / 4 * 3 + 3), *o = out;
  uint32_t v = 0;
  int bits = 0;
  if (!out) return NULL;
  for (i = 0; i < n && s[i] != '='; i++) {
    const char *p = strchr(b64, s[i]);
    if (!p || !s[i]) {
      free(out);
      return NULL;
    }
    v = v << 6 | (uint32_t)(p - b64);
    if ((bits += 6) >= 8) {
      bits -= 8;
      *o++ = (char)(v >> bits & 0xff);
    }
  }
  for (; i < n; i++)
    if (s[i] != '=') {
      free(out);
      return NULL;
    }
  *o = 0;
  return out;
}
