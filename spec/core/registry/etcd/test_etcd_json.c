/* test_etcd_json.c: the etcd backend's message parsers (etcd_json.c) alone,
 * without etcd or a loop: range answers, watch stream lines, grant and
 * keepalive answers, and the range a request asks for. They are pure, so
 * each case is a string in and a value out. */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "check.h"
#include "registry/etcd/etcd.h"

/* base64 of "rpcx/Arith/tcp@127.0.0.1:8972", "weight=10" and
 * "rpcx/Echo/tcp@127.0.0.1:9000". */
#define K1 "cnBjeC9Bcml0aC90Y3BAMTI3LjAuMC4xOjg5NzI="
#define V1 "d2VpZ2h0PTEw"
#define K2 "cnBjeC9FY2hvL3RjcEAxMjcuMC4wLjE6OTAwMA=="

static int parse(const char *json, const char *service, etcd_range_t *rg) {
  int err, rc;
  cJSON *j = mrpc__etcd_answer(0, 200, json, strlen(json), &err);
  if (!j) return err;
  rc = mrpc__etcd_range_parse(j, service, rg);
  cJSON_Delete(j);
  return rc;
}

static void test_range(void) {
  etcd_range_t rg;
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" K1 "\",\"value\":\"" V1 "\"}]}", "Arith", &rg), 0);
  CHECK_EQ_INT(rg.n, 1);
  if (rg.n == 1) {
    CHECK(strcmp(rg.list[0].service, "Arith") == 0);
    CHECK(strcmp(rg.list[0].addr, "tcp@127.0.0.1:8972") == 0);
    CHECK(strcmp(rg.list[0].meta, "weight=10") == 0);
  }
  mrpc__etcd_range_free(&rg);

  /* Every service: each entry named by its key; no value is "". */
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" K1 "\",\"value\":\"" V1 "\"},{\"key\":\"" K2
                     "\"}]}", "", &rg), 0);
  CHECK_EQ_INT(rg.n, 2);
  if (rg.n == 2) {
    CHECK(strcmp(rg.list[0].service, "Arith") == 0);
    CHECK(strcmp(rg.list[1].service, "Echo") == 0);
    CHECK(strcmp(rg.list[1].addr, "tcp@127.0.0.1:9000") == 0);
    CHECK(strcmp(rg.list[1].meta, "") == 0);
  }
  mrpc__etcd_range_free(&rg);

  /* No kvs at all: an empty list. */
  CHECK_EQ_INT(parse("{\"header\":{}}", "Arith", &rg), 0);
  CHECK_EQ_INT(rg.n, 0);
  mrpc__etcd_range_free(&rg);
  report("range answers become entries");
}

static void test_range_bad(void) {
  etcd_range_t rg;
  int err;
  CHECK_EQ_INT(parse("{\"kvs\":{}}", "Arith", &rg), MRPC_EPROTO);
  CHECK(rg.list == NULL && rg.n == 0);
  CHECK_EQ_INT(parse("{\"kvs\":[{\"value\":\"" V1 "\"}]}", "Arith", &rg), MRPC_EPROTO);
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" K1 "\"},{\"key\":\"***\"}]}", "Arith", &rg),
               MRPC_EPROTO);
  CHECK(rg.list == NULL && rg.strs == NULL);
  /* Every service, but a key without a '/': no service to name. */
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" V1 "\"}]}", "", &rg), MRPC_EPROTO);
  CHECK_EQ_INT(parse("[1]", "Arith", &rg), MRPC_EPROTO);
  CHECK_EQ_INT(parse("{", "Arith", &rg), MRPC_EPROTO);
  CHECK(mrpc__etcd_answer(0, 404, "{}", 2, &err) == NULL);
  CHECK_EQ_INT(err, MRPC_EREMOTE);
  CHECK(mrpc__etcd_answer(MRPC_ETIMEDOUT, 0, "", 0, &err) == NULL);
  CHECK_EQ_INT(err, MRPC_ETIMEDOUT);
  report("bad range answers are MRPC_EPROTO, other failures pass through");
}

#define LINE(s) mrpc__etcd_watch_line(s, strlen(s))

static void test_watch_line(void) {
  CHECK_EQ_INT(LINE(""), 0);
  CHECK_EQ_INT(LINE("\r"), 0);
  CHECK_EQ_INT(LINE("{\"result\":{\"header\":{},\"created\":true}}"), WATCH_CREATED);
  CHECK_EQ_INT(LINE("{\"result\":{\"events\":[{\"kv\":{}}]}}"), WATCH_EVENTS);
  CHECK_EQ_INT(LINE("{\"result\":{\"events\":[]}}"), 0);
  CHECK_EQ_INT(LINE("{\"result\":{\"canceled\":true}}"), MRPC_EREMOTE);
  CHECK_EQ_INT(LINE("{\"error\":{\"grpc_code\":14}}"), MRPC_EREMOTE);
  CHECK_EQ_INT(LINE("{\"result\":"), MRPC_EREMOTE);
  report("watch stream lines: created, events, or the end");
}

static cJSON *json(const char *s) { return cJSON_Parse(s); }

static void test_lease_answers(void) {
  char id[32];
  cJSON *j = json("{\"ID\":\"7587862051219066375\",\"TTL\":\"10\"}");
  CHECK_EQ_INT(mrpc__etcd_grant_id(j, id, sizeof id), 0);
  CHECK(strcmp(id, "7587862051219066375") == 0);
  CHECK_EQ_INT(mrpc__etcd_grant_id(j, id, 5), MRPC_EPROTO);
  cJSON_Delete(j);
  j = json("{\"ID\":7}");
  CHECK_EQ_INT(mrpc__etcd_grant_id(j, id, sizeof id), MRPC_EPROTO);
  cJSON_Delete(j);
  CHECK_EQ_INT(mrpc__etcd_grant_id(NULL, id, sizeof id), MRPC_EPROTO);

  j = json("{\"result\":{\"ID\":\"1\",\"TTL\":\"9\"}}");
  CHECK(mrpc__etcd_keepalive_ok(j));
  cJSON_Delete(j);
  j = json("{\"result\":{\"ID\":\"1\",\"TTL\":\"0\"}}");
  CHECK(!mrpc__etcd_keepalive_ok(j));
  cJSON_Delete(j);
  j = json("{\"result\":{\"ID\":\"1\"}}");
  CHECK(!mrpc__etcd_keepalive_ok(j));
  cJSON_Delete(j);
  CHECK(!mrpc__etcd_keepalive_ok(NULL));
  report("grant and keepalive answers");
}

static void test_range_request(void) {
  cJSON *q, *c;
  CHECK_EQ_INT(mrpc__etcd_q_range("rpcx/Arith/", &q), 0);
  /* "rpcx/Arith/" and "rpcx/Arith0" ('/' + 1). */
  CHECK(strcmp(mrpc__etcd_jstr(q, "key"), "cnBjeC9Bcml0aC8=") == 0);
  CHECK(strcmp(mrpc__etcd_jstr(q, "range_end"), "cnBjeC9Bcml0aDA=") == 0);
  cJSON_Delete(q);
  CHECK_EQ_INT(mrpc__etcd_q_watch("rpcx/Arith/", &q), 0);
  c = cJSON_GetObjectItemCaseSensitive(q, "create_request");
  CHECK(c && strcmp(mrpc__etcd_jstr(c, "range_end"), "cnBjeC9Bcml0aDA=") == 0);
  cJSON_Delete(q);
  CHECK_EQ_INT(mrpc__etcd_q_range("", &q), MRPC_EINVAL);
  CHECK(q == NULL);
  report("a prefix's range ends after its last byte plus one");
}

/* Bug (found by spec/fuzz/fuzz_etcd.c): a value whose base64 lacks part
 * of its padding ("pVwPWE=", 7 characters for 4 bytes) was decoded into a
 * buffer of n / 4 * 3 + 1 bytes, and its NUL written past the end. Such a
 * value now decodes, and one with characters after its '=' is refused. */
static void test_b64_short_padding_overflow(void) {
  etcd_range_t rg;
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" K1 "\",\"value\":\"pVwPWE=\"}]}", "Arith", &rg), 0);
  CHECK_EQ_INT(rg.n, 1);
  if (rg.n == 1) CHECK(memcmp(rg.list[0].meta, "\xa5\x5c\x0f\x58", 5) == 0);
  mrpc__etcd_range_free(&rg);
  /* Unpadded lengths 2 and 3 of a group, every one in bounds. */
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" K1 "\",\"value\":\"d2VpZ2h0PTEwJg\"}]}", "Arith", &rg), 0);
  if (rg.n == 1) CHECK(strcmp(rg.list[0].meta, "weight=10&") == 0);
  mrpc__etcd_range_free(&rg);
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" K1 "\",\"value\":\"d2VpZ2h0PTEwJmc\"}]}", "Arith", &rg), 0);
  if (rg.n == 1) CHECK(strcmp(rg.list[0].meta, "weight=10&g") == 0);
  mrpc__etcd_range_free(&rg);
  CHECK_EQ_INT(parse("{\"kvs\":[{\"key\":\"" K1 "\",\"value\":\"d2=Vp\"}]}", "Arith", &rg), MRPC_EPROTO);
  CHECK_EQ_INT(rg.n, 0);
  mrpc__etcd_range_free(&rg);
  report("b64_short_padding_overflow: a value short of its padding decodes in bounds");
}

int main(void) {
  test_range();
  test_range_bad();
  test_watch_line();
  test_lease_answers();
  test_range_request();
  test_b64_short_padding_overflow();
  return finish();
}
