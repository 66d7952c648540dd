/* test_jsonpack.c: the msgpack <-> cJSON bridge (codec/jsonpack.c) that the
 * embedded registry reads its requests with, on hostile input. Each test is
 * a regression found by spec/fuzz/fuzz_regsrv.c, named after its bug. No
 * vectors are needed; argv is ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "codec/codec.h"
#include "moonrpc/frame.h"
#include "check.h"

/* The process's peak virtual size in KiB (VmPeak), which an allocation
 * raises even when its pages are never touched; -1 if unknown. */
static long vm_peak_kib(void) {
  char line[256];
  long kib = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmPeak: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}

/* Bug: six bytes announcing an array of 100 million elements made
 * msgpack-c's unpacker allocate the elements (gigabytes) before finding
 * that the bytes were not there. Counts are now checked against the bytes
 * left first. */
static void test_huge_count_allocates_gigabytes(void) {
  static const char arr[] = "\xdd\x05\xf5\xe1\x00";       /* array32, 100M */
  static const char map[] = "\xdf\x05\xf5\xe1\x00";       /* map32, 100M */
  static const char max[] = "\xdd\xff\xff\xff\xff";       /* array32, 2^32-1 */
  static const char nested[] = "\x91\xdd\x05\xf5\xe1\x00"; /* inside an array */
  long before = vm_peak_kib(), after;
  CHECK(mrpc__msgpack_to_json(arr, 5, 64) == NULL);
  CHECK(mrpc__msgpack_to_json(map, 5, 64) == NULL);
  CHECK(mrpc__msgpack_to_json(max, 5, 64) == NULL);
  CHECK(mrpc__msgpack_to_json(nested, 6, 64) == NULL);
  CHECK(mrpc__json_decode(arr, 5, MRPC_SERIALIZE_MSGPACK, 64) == NULL);
  after = vm_peak_kib();
  if (before > 0 && after > 0) {
    if (after - before >= 64 * 1024)
      fprintf(stderr, "    VmPeak grew by %ld KiB\n", after - before);
    CHECK(after - before < 64 * 1024);
  }
  /* What fits still decodes: an array of 3, a map of 1. */
  {
    cJSON *j = mrpc__msgpack_to_json("\xdd\x00\x00\x00\x03\x01\x02\x03", 8, 64);
    CHECK(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 3);
    cJSON_Delete(j);
    j = mrpc__msgpack_to_json("\xdf\x00\x00\x00\x01\xa1k\xc3", 8, 64);
    CHECK(cJSON_IsObject(j) && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "k")));
    cJSON_Delete(j);
  }
  /* A count one past the bytes left, and nesting past max_depth. */
  CHECK(mrpc__msgpack_to_json("\x93\x01\x02", 3, 64) == NULL);
  CHECK(mrpc__msgpack_to_json("\x91\x91\x01", 3, 2) == NULL);
  {
    cJSON *j = mrpc__msgpack_to_json("\x91\x91\x01", 3, 3);
    CHECK(cJSON_IsArray(j));
    cJSON_Delete(j);
  }
  report("huge_count_allocates_gigabytes");
}

/* Bug: a map with an empty string key ("" : 1) copied the key with
 * memcpy(key, NULL, 0), undefined behaviour (msgpack-c leaves an empty
 * string's pointer NULL); UBSan stopped the _asan build on it. */
static void test_empty_key_memcpy_null(void) {
  cJSON *j = mrpc__msgpack_to_json("\x81\xa0\x01", 3, 64);
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "");
  CHECK(cJSON_IsObject(j));
  CHECK(cJSON_IsNumber(v) && v->valuedouble == 1);
  cJSON_Delete(j);
  report("empty_key_memcpy_null");
}

/* Bug: a map key of 256 bytes or more was refused in msgpack while JSON
 * took it, so a JSON request's tree written as msgpack did not read back
 * (fuzz_regsrv's round trip). Keys of any length now decode. */
static void test_long_key_refused_in_msgpack(void) {
  char key[301], json[400];
  cJSON *j, *back;
  mrpc_buf_t b = {0};
  memset(key, 'k', 300);
  key[300] = 0;
  snprintf(json, sizeof json, "{\"%s\":[1,\"x\"]}", key);
  j = mrpc__json_decode(json, strlen(json), MRPC_SERIALIZE_JSON, 64);
  CHECK(j && mrpc__json_to_msgpack(j, &b, 64) == 0);
  back = mrpc__msgpack_to_json(b.data, b.len, 64);
  CHECK(back && cJSON_Compare(j, back, 1));
  CHECK(cJSON_GetObjectItemCaseSensitive(back, key) != NULL);
  cJSON_Delete(j);
  cJSON_Delete(back);
  mrpc_buf_free(&b);
  report("long_key_refused_in_msgpack");
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  test_huge_count_allocates_gigabytes();
  test_empty_key_memcpy_null();
  test_long_key_refused_in_msgpack();
  return finish();
}
