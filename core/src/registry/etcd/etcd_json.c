/* registry/etcd/etcd_json.c: the messages of etcd's v3 JSON gateway, built
 * and read without I/O: the request bodies the backend POSTs, and the
 * reading of etcd's answers (a generic answer, a lease grant, a keepalive,
 * a range of keys, one line of a watch stream). Pure functions of their
 * arguments, so the answer parsers can be tested and fuzzed on their own.
 *
 * The gateway's conventions: keys and values are base64 strings, and
 * 64-bit integers (lease IDs, TTLs, revisions) are JSON strings; lease IDs
 * stay strings here from end to end. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "registry/etcd/etcd.h"

/* ---- requests ------------------------------------------------------------ */

int mrpc__etcd_add_b64(cJSON *o, const char *name, const char *s, size_t n) {
  char *enc = mrpc__b64_enc(s, n);
  cJSON *item = enc ? cJSON_AddStringToObject(o, name, enc) : NULL;
  free(enc);
  return item ? 0 : MRPC_ENOMEM;
}

cJSON *mrpc__etcd_q_lease(const char *lease) {
  cJSON *o = cJSON_CreateObject();
  if (o && !cJSON_AddStringToObject(o, "ID", lease)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *mrpc__etcd_q_put(const char *key, const char *meta, const char *lease) {
  cJSON *o = cJSON_CreateObject();
  if (!o || mrpc__etcd_add_b64(o, "key", key, strlen(key)) < 0 ||
      mrpc__etcd_add_b64(o, "value", meta, strlen(meta)) < 0 ||
      (*lease && !cJSON_AddStringToObject(o, "lease", lease))) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *mrpc__etcd_q_key(const char *key) {
  cJSON *o = cJSON_CreateObject();
  if (!o || mrpc__etcd_add_b64(o, "key", key, strlen(key)) < 0) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

cJSON *mrpc__etcd_q_grant(unsigned ttl_s) {
  char ttl[16];
  cJSON *o = cJSON_CreateObject();
  snprintf(ttl, sizeof ttl, "%u", ttl_s);
  if (o && !cJSON_AddStringToObject(o, "TTL", ttl)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

/* Adds the prefix and its range_end (the prefix with its last byte plus
 * one) to o. */
static int add_range(cJSON *o, const char *prefix) {
  size_t n = strlen(prefix);
  char end[600];
  int rc;
  if (n == 0 || n >= sizeof end) return MRPC_EINVAL;
  memcpy(end, prefix, n);
  end[n - 1]++;
  if ((rc = mrpc__etcd_add_b64(o, "key", prefix, n)) < 0) return rc;
  return mrpc__etcd_add_b64(o, "range_end", end, n);
}

int mrpc__etcd_q_range(const char *prefix, cJSON **out) {
  cJSON *q = cJSON_CreateObject();
  int rc = q ? add_range(q, prefix) : MRPC_ENOMEM;
  if (rc < 0) {
    cJSON_Delete(q);
    q = NULL;
  }
  *out = q;
  return rc;
}

int mrpc__etcd_q_watch(const char *prefix, cJSON **out) {
  cJSON *q = cJSON_CreateObject(), *c;
  int rc = MRPC_ENOMEM;
  if (q && (c = cJSON_AddObjectToObject(q, "create_request"))) rc = add_range(c, prefix);
  if (rc < 0) {
    cJSON_Delete(q);
    q = NULL;
  }
  *out = q;
  return rc;
}

/* ---- answers ------------------------------------------------------------- */

const char *mrpc__etcd_jstr(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

cJSON *mrpc__etcd_answer(int status, long code, const char *body, size_t len, int *err) {
  cJSON *j;
  if (status < 0) {
    *err = status;
    return NULL;
  }
  if (code != 200) {
    *err = MRPC_EREMOTE;
    return NULL;
  }
  if (!(j = cJSON_ParseWithLength(body, len)) || !cJSON_IsObject(j)) {
    cJSON_Delete(j);
    *err = MRPC_EPROTO;
    return NULL;
  }
  *err = 0;
  return j;
}

int mrpc__etcd_grant_id(const cJSON *j, char *buf, size_t size) {
  const char *id = j ? mrpc__etcd_jstr(j, "ID") : NULL;
  if (!id || strlen(id) >= size) return MRPC_EPROTO;
  strcpy(buf, id);
  return 0;
}

int mrpc__etcd_keepalive_ok(const cJSON *j) {
  const cJSON *res = j ? cJSON_GetObjectItemCaseSensitive(j, "result") : NULL;
  const char *ttl = res ? mrpc__etcd_jstr(res, "TTL") : NULL;
  return ttl && strcmp(ttl, "0") != 0;
}

void mrpc__etcd_range_free(etcd_range_t *rg) {
  size_t i;
  if (rg->strs)
    for (i = 0; i < 3 * rg->n; i++) free(rg->strs[i]);
  free(rg->strs);
  free(rg->list);
  rg->strs = NULL;
  rg->list = NULL;
  rg->n = 0;
}

int mrpc__etcd_range_parse(const cJSON *j, const char *service, etcd_range_t *out) {
  const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(j, "kvs"), *kv;
  mrpc_reg_entry_t *list = NULL;
  char **strs = NULL;
  size_t n = 0, cap = kvs ? (size_t)cJSON_GetArraySize(kvs) : 0;
  int rc = 0;
  out->list = NULL;
  out->strs = NULL;
  out->n = 0;
  if (kvs && !cJSON_IsArray(kvs)) return MRPC_EPROTO;
  if (cap && (!(list = calloc(cap, sizeof *list)) || !(strs = calloc(cap * 3, sizeof *strs)))) {
    free(list);
    return MRPC_ENOMEM;
  }
  cJSON_ArrayForEach(kv, kvs) {
    const char *k = mrpc__etcd_jstr(kv, "key"), *v = mrpc__etcd_jstr(kv, "value"), *slash;
    char *key = k ? mrpc__b64_dec(k) : NULL, *val = mrpc__b64_dec(v ? v : "");
    strs[3 * n] = key;
    strs[3 * n + 1] = val;
    if (!key || !val) {
      rc = MRPC_EPROTO;
      n++;
      break;
    }
    slash = strrchr(key, '/');
    list[n].service = service;
    if (!*service) { /* every service: base/Service/addr names it */
      const char *p = slash;
      while (p && p > key && p[-1] != '/') p--;
      if (!p || !(strs[3 * n + 2] = mrpc__strndup(p, (size_t)(slash - p)))) {
        rc = p ? MRPC_ENOMEM : MRPC_EPROTO;
        n++;
        break;
      }
      list[n].service = strs[3 * n + 2];
    }
    list[n].addr = slash ? slash + 1 : key;
    list[n].meta = val;
    n++;
  }
  out->list = list;
  out->strs = strs;
  out->n = n;
  if (rc < 0) mrpc__etcd_range_free(out);
  return rc;
}

int mrpc__etcd_watch_line(const char *p, size_t n) {
  cJSON *j;
  const cJSON *res;
  int flags = 0;
  if (n <= 1) return 0; /* a blank line between objects */
  j = cJSON_ParseWithLength(p, n);
  res = j ? cJSON_GetObjectItemCaseSensitive(j, "result") : NULL;
  if (!res || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"))) {
    cJSON_Delete(j);
    return MRPC_EREMOTE; /* an error object, or the watch ended */
  }
  if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "created"))) flags |= WATCH_CREATED;
  if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "events")) > 0)
    flags |= WATCH_EVENTS;
  cJSON_Delete(j);
  return flags;
}
