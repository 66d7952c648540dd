/* redis_format.c: the text formats the Redis registry writes and reads,
 * as pure functions with no I/O (so that they can be tested and fuzzed
 * alone): the libkv value of an instance, and glob patterns for SCAN MATCH
 * and PSUBSCRIBE.
 *
 * rpcx's Redis plugin stores through libkv, whose value is the JSON of a
 * KVPair: {"Key": key, "Value": base64(meta), "LastIndex": n}. Writing the
 * same lets Go rpcx clients discover moonrpc servers in a shared Redis;
 * reading it (and plain values too) lets us discover theirs. */
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "registry/redis/redis.h"

char *mrpc__redis_libkv_value(const char *key, const char *meta, uint64_t index) {
  cJSON *o = cJSON_CreateObject();
  char *enc = mrpc__b64_enc(meta, strlen(meta)), *out = NULL;
  if (o && enc && cJSON_AddStringToObject(o, "Key", key) &&
      cJSON_AddStringToObject(o, "Value", enc) &&
      cJSON_AddNumberToObject(o, "LastIndex", (double)index))
    out = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  free(enc);
  return out;
}

/* A value that is not a JSON object is a plain one; so is an object
 * without a string (or null) "Value". */
char *mrpc__redis_libkv_meta(const char *v, size_t len) {
  cJSON *o, *val;
  char *meta = NULL;
  if (len == 0 || v[0] != '{' || !(o = cJSON_ParseWithLength(v, len))) return NULL;
  val = cJSON_GetObjectItemCaseSensitive(o, "Value");
  if (cJSON_IsString(val)) meta = mrpc__b64_dec(val->valuestring);
  else if (cJSON_IsNull(val)) meta = strdup("");
  cJSON_Delete(o);
  return meta;
}

/* Service names may hold glob metacharacters; escaped, a pattern matches
 * the one prefix only. */
char *mrpc__redis_glob_escape(const char *head, const char *s, const char *tail) {
  size_t n = strlen(head) + 2 * strlen(s) + strlen(tail) + 1;
  char *out = malloc(n), *o;
  if (!out) return NULL;
  o = out + strlen(head);
  memcpy(out, head, strlen(head));
  for (; *s; s++) {
    if (strchr("*?[]\\", *s)) *o++ = '\\';
    *o++ = *s;
  }
  strcpy(o, tail);
  return out;
}
