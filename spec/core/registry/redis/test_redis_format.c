/* test_redis_format.c: the Redis registry's pure formats (redis_format.c)
 * alone, without Redis: rpcx's libkv values written and read back, plain
 * values, and the regressions the fuzzer (spec/fuzz/fuzz_kvmeta.c) found,
 * each named after its bug. No vectors are needed; argv is ignored. */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "check.h"
#include "registry/redis/redis.h"

static void test_libkv_round_trip(void) {
  char *v = mrpc__redis_libkv_value("rpcx/Arith/tcp@127.0.0.1:8972", "weight=10&group=a", 3);
  char *m = v ? mrpc__redis_libkv_meta(v, strlen(v)) : NULL;
  CHECK(v && m && strcmp(m, "weight=10&group=a") == 0);
  free(m);
  cJSON_free(v);
  m = mrpc__redis_libkv_meta("weight=1", 8); /* a plain value */
  CHECK(m == NULL);
  m = mrpc__redis_libkv_meta("{\"Value\":null}", 14);
  CHECK(m && *m == 0);
  free(m);
  report("libkv values read back what they hold");
}

/* Bug: a libkv Value short of its padding ("pVwPWE=", 4 bytes in 7
 * characters) was base64-decoded into a buffer one byte too small. */
static void test_libkv_b64_short_padding_overflow(void) {
  static const char v[] = "{\"Key\":\"rpcx/Arith/tcp@127.0870..:192\",\"Value\":\"pVwPWE=\","
                          "\"LastIndendex\":0}";
  char *m = mrpc__redis_libkv_meta(v, sizeof v - 1);
  CHECK(m && memcmp(m, "\xa5\x5c\x0f\x58", 5) == 0);
  free(m);
  m = mrpc__redis_libkv_meta("{\"Value\":\"d2VpZ2h0PTEw=x\"}", 26);
  CHECK(m == NULL);
  free(m);
  report("libkv_b64_short_padding_overflow: the value decodes in bounds");
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  test_libkv_round_trip();
  test_libkv_b64_short_padding_overflow();
  return finish();
}
