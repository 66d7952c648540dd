/* fuzz_etcd: the etcd registry's reading of its JSON gateway's answers
 * (registry/etcd/etcd_json.c), pure code over what an etcd (or whatever
 * answers on its port) sends: mrpc__etcd_answer over the body, then a range
 * answer read for every service and for one (mrpc__etcd_range_parse), a
 * grant's lease ID, a keepalive's TTL; and the same bytes as one line of a
 * watch stream (mrpc__etcd_watch_line). The input is copied into a block
 * of exactly its size. Properties: no crash, leak or UB; an answer is an
 * object or MRPC_EPROTO; a range's entries are whole C strings, none on
 * error; a lease ID fits its buffer; a watch line's mask is a known one. */
#include "fuzz_common.h"
#include "registry/etcd/etcd.h"

static void etcd(const char *p, size_t n) {
  int err;
  cJSON *j = mrpc__etcd_answer(0, 200, p, n, &err);
  if (j) {
    static const char *const services[] = {"", "Arith", "a/b"};
    char lease[32];
    FUZZ_CHECK(err == 0 && cJSON_IsObject(j));
    for (size_t s = 0; s < 3; s++) {
      etcd_range_t rg;
      int rc = mrpc__etcd_range_parse(j, services[s], &rg);
      FUZZ_CHECK(rc == 0 || rc == MRPC_EPROTO);
      if (rc == 0)
        for (size_t i = 0; i < rg.n; i++) {
          FUZZ_CHECK(rg.list[i].service && rg.list[i].addr && rg.list[i].meta);
          (void)strlen(rg.list[i].service);
          (void)strlen(rg.list[i].addr);
          (void)strlen(rg.list[i].meta);
        }
      else
        FUZZ_CHECK(rg.n == 0 && rg.list == NULL);
      mrpc__etcd_range_free(&rg);
    }
    if (mrpc__etcd_grant_id(j, lease, sizeof lease) == 0) FUZZ_CHECK(strlen(lease) < sizeof lease);
    (void)mrpc__etcd_keepalive_ok(j);
    cJSON_Delete(j);
  } else {
    FUZZ_CHECK(err == MRPC_EPROTO);
  }
  {
    int w = mrpc__etcd_watch_line(p, n);
    FUZZ_CHECK(w == MRPC_EREMOTE || (w >= 0 && w <= (WATCH_CREATED | WATCH_EVENTS)));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *p = fuzz_dup(data, size);
  etcd(p, size);
  free(p);
  return 0;
}
