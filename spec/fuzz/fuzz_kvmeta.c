/* fuzz_kvmeta: the values a registry hands the cluster client:
 *   rpcx's libkv values in Redis (registry/redis/redis_format.c,
 *     mrpc__redis_libkv_meta), which must read back what
 *     mrpc__redis_libkv_value writes of what was read;
 *   metadata query strings (cluster/selector_meta.c, mrpc__meta_parse) and
 *     Go's QueryUnescape under them (base/util.c, mrpc__query_unescape).
 * The input is copied into a block of exactly its size (NUL-terminated for
 * the parsers that take a C string). Properties: no crash, leak or UB; the
 * weight stays in [0, MRPC_SELECT_MAX_WEIGHT] and a position is a number;
 * no group matches NULL; unescaping never writes more than it read, and in
 * place (as its contract allows) gives the same bytes. */
#include "fuzz_common.h"
#include <cjson/cJSON.h>
#include "base/base.h"
#include "cluster/cluster.h"

/* registry/redis/redis.h's pure half (that header pulls the whole backend
 * in): */
char *mrpc__redis_libkv_value(const char *key, const char *meta, uint64_t index);
char *mrpc__redis_libkv_meta(const char *v, size_t len);

static void redis(const char *p, size_t n) {
  char *meta = mrpc__redis_libkv_meta(p, n);
  if (meta) {
    /* What we read, we write the same way and read back. */
    char *v = mrpc__redis_libkv_value("rpcx/Arith/tcp@x:1", meta, 7);
    char *back;
    FUZZ_CHECK(v);
    back = mrpc__redis_libkv_meta(v, strlen(v));
    FUZZ_CHECK(back && strcmp(back, meta) == 0);
    free(back);
    cJSON_free(v);
    free(meta);
  }
}

static void query(const char *p, size_t n) {
  char *z = malloc(n + 1), *out = malloc(n ? n : 1);
  size_t outn = 0;
  mrpc__meta_t m;
  FUZZ_CHECK(z && out);
  memcpy(z, p, n);
  z[n] = 0;
  FUZZ_CHECK(mrpc__meta_parse(z, "g1", &m) == 0);
  if (m.ok) {
    FUZZ_CHECK(m.weight >= 0 && m.weight <= MRPC_SELECT_MAX_WEIGHT);
    if (m.has_geo) FUZZ_CHECK(m.lat == m.lat && m.lon == m.lon);
  }
  FUZZ_CHECK(mrpc__meta_parse(z, NULL, &m) == 0);
  FUZZ_CHECK(!m.in_group);
  if (mrpc__query_unescape(p, n, out, &outn) == 0) {
    FUZZ_CHECK(outn <= n);
    /* In place, as the contract allows, gives the same bytes. */
    char *again = fuzz_dup(p, n);
    size_t an = 0;
    FUZZ_CHECK(mrpc__query_unescape(again, n, again, &an) == 0);
    FUZZ_CHECK(an == outn && (an == 0 || memcmp(again, out, an) == 0));
    free(again);
  }
  free(z);
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *p = fuzz_dup(data, size);
  redis(p, size);
  query(p, size);
  free(p);
  return 0;
}
