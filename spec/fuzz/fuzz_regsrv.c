/* fuzz_regsrv: the embedded registry's requests as its Registry service
 * (registry/embedded/regsrv.c) reads them: mrpc__json_decode over the
 * payload, msgpack (through mrpc__msgpack_to_json) or JSON, and the answer
 * written back with mrpc__json_encode (codec/jsonpack.c). The methods
 * themselves need a server connection (mrpc_req_conn) and are not driven
 * here; the bridge is, both ways.
 *
 * Input: byte 0 picks the codec (bit 0: msgpack, else JSON) and max_depth
 * (1..64), the rest is the payload. Properties: no crash, leak or UB; a
 * msgpack tree never nests past max_depth; what decoded encodes in both
 * codecs (unless it nests past the encoder's 64 or, for msgpack, holds a
 * number JSON cannot carry) and reads back equal (cJSON_Compare). */
#include <math.h>
#include "fuzz_common.h"
#include "codec/codec.h"
#include "moonrpc/frame.h"

static unsigned depth_of(const cJSON *j) {
  unsigned d = 0;
  for (const cJSON *c = j->child; c; c = c->next) {
    unsigned k = depth_of(c);
    if (k > d) d = k;
  }
  return (cJSON_IsArray(j) || cJSON_IsObject(j)) ? d + 1 : 1;
}

static int finite_only(const cJSON *j) {
  if (cJSON_IsNumber(j) && !isfinite(j->valuedouble)) return 0;
  for (const cJSON *c = j->child; c; c = c->next)
    if (!finite_only(c)) return 0;
  return 1;
}

/* cJSON_Compare finds an object's members by name, the first of each: an
 * object with a key twice cannot compare equal to itself. */
static int unique_keys(const cJSON *j) {
  for (const cJSON *c = j->child; c; c = c->next) {
    if (cJSON_IsObject(j))
      for (const cJSON *d = c->next; d; d = d->next)
        if (strcmp(c->string, d->string) == 0) return 0;
    if (!unique_keys(c)) return 0;
  }
  return 1;
}

static int comparable(const cJSON *j) { return finite_only(j) && unique_keys(j); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mrpc_buf_t pack = {0};
  unsigned max_depth;
  int ser;
  cJSON *in, *back;
  char *p, *text;
  const char *out;
  size_t n;
  if (size < 1) return 0;
  ser = data[0] & 1 ? MRPC_SERIALIZE_MSGPACK : MRPC_SERIALIZE_JSON;
  max_depth = 1 + (data[0] >> 1) % 64;
  p = fuzz_dup(data + 1, size - 1);
  in = mrpc__json_decode(p, size - 1, ser, max_depth);
  free(p);
  if (!in) return 0;
  if (ser == MRPC_SERIALIZE_MSGPACK) FUZZ_CHECK(depth_of(in) <= max_depth);

  /* msgpack, and back */
  if (mrpc__json_encode(in, MRPC_SERIALIZE_MSGPACK, &pack, &text, &out, &n) == 0) {
    FUZZ_CHECK(text == NULL);
    back = mrpc__json_decode(out, n, MRPC_SERIALIZE_MSGPACK, 64);
    FUZZ_CHECK(back || n == 0);
    if (back && n) FUZZ_CHECK(!comparable(in) || cJSON_Compare(in, back, 1));
    cJSON_Delete(back);
  } else {
    FUZZ_CHECK(depth_of(in) > 64);
  }
  /* JSON text, and back (NaN and infinities print as null) */
  FUZZ_CHECK(mrpc__json_encode(in, MRPC_SERIALIZE_JSON, &pack, &text, &out, &n) == 0);
  FUZZ_CHECK(text && strlen(text) == n);
  back = mrpc__json_decode(out, n, MRPC_SERIALIZE_JSON, 64);
  FUZZ_CHECK(back);
  if (comparable(in)) FUZZ_CHECK(cJSON_Compare(in, back, 1));
  cJSON_Delete(back);
  cJSON_free(text);
  cJSON_Delete(in);
  mrpc_buf_free(&pack);
  return 0;
}
