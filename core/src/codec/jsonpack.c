/* jsonpack.c: converts between msgpack and cJSON trees, so that a core
 * service written over cJSON (the embedded registry) answers callers in
 * either codec: rpcx's Go client sends msgpack by default, curl and the
 * gateway send JSON. Both directions refuse, with an error, what has no
 * counterpart (a map key that is not a string, an ext type) and nesting
 * deeper than max_depth. */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <msgpack.h>
#include "codec/codec.h"

static cJSON *from_obj(const msgpack_object *o, unsigned depth, unsigned max_depth) {
  cJSON *j = NULL, *v;
  uint32_t i;
  if (depth > max_depth) return NULL;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL: return cJSON_CreateNull();
  case MSGPACK_OBJECT_BOOLEAN: return cJSON_CreateBool(o->via.boolean);
  case MSGPACK_OBJECT_POSITIVE_INTEGER: return cJSON_CreateNumber((double)o->via.u64);
  case MSGPACK_OBJECT_NEGATIVE_INTEGER: return cJSON_CreateNumber((double)o->via.i64);
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64: return cJSON_CreateNumber(o->via.f64);
  case MSGPACK_OBJECT_STR:
  case MSGPACK_OBJECT_BIN: {
    const char *p = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
    uint32_t n = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
    char *s = malloc((size_t)n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, n);
    s[n] = 0;
    j = cJSON_CreateString(s); /* stops at an embedded NUL: not a name anyway */
    free(s);
    return j;
  }
  case MSGPACK_OBJECT_ARRAY:
    if (!(j = cJSON_CreateArray())) return NULL;
    for (i = 0; i < o->via.array.size; i++) {
      if (!(v = from_obj(&o->via.array.ptr[i], depth + 1, max_depth))) goto fail;
      cJSON_AddItemToArray(j, v);
    }
    return j;
  case MSGPACK_OBJECT_MAP:
    if (!(j = cJSON_CreateObject())) return NULL;
    for (i = 0; i < o->via.map.size; i++) {
      const msgpack_object_kv *kv = &o->via.map.ptr[i];
      char small[256], *key = small;
      uint32_t kn;
      if (kv->key.type != MSGPACK_OBJECT_STR) goto fail;
      /* A key of any length, as JSON has: one past the stack buffer is
       * copied to the heap (the input's size bounds it). */
      kn = kv->key.via.str.size;
      if (kn >= sizeof small && !(key = malloc((size_t)kn + 1))) goto fail;
      if (kn) /* an empty key's ptr may be NULL */
        memcpy(key, kv->key.via.str.ptr, kn);
      key[kn] = 0;
      v = from_obj(&kv->val, depth + 1, max_depth);
      if (v) cJSON_AddItemToObject(j, key, v);
      if (key != small) free(key);
      if (!v) goto fail;
    }
    return j;
  default:
    return NULL;
  }
fail:
  cJSON_Delete(j);
  return NULL;
}

/* Walks the msgpack value at p[0..end) without building it: the end of the
 * value, or NULL when it is truncated, nests past max_depth (the top value
 * is at depth 1, as in from_obj), holds an ext (refused by from_obj anyway)
 * or announces more elements than bytes are left (each takes one at
 * least). msgpack-c's unpacker allocates an array's or map's elements from
 * the count alone, so six bytes announcing 2^32 - 1 elements would make it
 * ask for gigabytes: this walk runs first and bounds its allocations by the
 * input's size. */
static const unsigned char *mp_walk(const unsigned char *p, const unsigned char *end,
                                    unsigned depth, unsigned max_depth) {
  uint64_t n = 0, i;
  size_t w = 0; /* bytes of the length or count that follows the type byte */
  int kind;     /* 0: a scalar of w bytes, 1: str/bin, 2: array, 3: map */
  unsigned char b;
  if (depth > max_depth || p >= end) return NULL;
  b = *p++;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return p;
  if (b >= 0xa0 && b <= 0xbf) kind = 1, n = b & 31;
  else if (b >= 0x90 && b <= 0x9f) kind = 2, n = b & 15;
  else if (b >= 0x80 && b <= 0x8f) kind = 3, n = b & 15;
  else switch (b) {
  case 0xcc: case 0xd0: kind = 0, w = 1; break;
  case 0xcd: case 0xd1: kind = 0, w = 2; break;
  case 0xca: case 0xce: case 0xd2: kind = 0, w = 4; break;
  case 0xcb: case 0xcf: case 0xd3: kind = 0, w = 8; break;
  case 0xc4: case 0xd9: kind = 1, w = 1; break;
  case 0xc5: case 0xda: kind = 1, w = 2; break;
  case 0xc6: case 0xdb: kind = 1, w = 4; break;
  case 0xdc: kind = 2, w = 2; break;
  case 0xdd: kind = 2, w = 4; break;
  case 0xde: kind = 3, w = 2; break;
  case 0xdf: kind = 3, w = 4; break;
  default: return NULL; /* 0xc1, and every ext */
  }
  if ((size_t)(end - p) < w) return NULL;
  if (kind == 0) return p + w;
  for (i = 0; i < w; i++) n = n << 8 | p[i];
  p += w;
  if (kind == 3) n *= 2;
  if (n > (uint64_t)(end - p)) return NULL;
  if (kind == 1) return p + n;
  for (i = 0; i < n; i++)
    if (!(p = mp_walk(p, end, depth + 1, max_depth))) return NULL;
  return p;
}

cJSON *mrpc__msgpack_to_json(const char *data, size_t len, unsigned max_depth) {
  msgpack_unpacked u;
  size_t off = 0;
  cJSON *j = NULL;
  const unsigned char *u8 = (const unsigned char *)data;
  if (!data || mp_walk(u8, u8 + len, 1, max_depth) != u8 + len) return NULL;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len)
    j = from_obj(&u.data, 1, max_depth);
  msgpack_unpacked_destroy(&u);
  return j;
}

static int write_buf(void *data, const char *p, size_t n) {
  return mrpc_buf_append(data, p, n) == 0 ? 0 : -1;
}

static int pack(msgpack_packer *pk, const cJSON *j, unsigned depth, unsigned max_depth) {
  const cJSON *c;
  int n = 0;
  if (depth > max_depth) return MRPC_EDEPTH;
  if (cJSON_IsNull(j)) return msgpack_pack_nil(pk);
  if (cJSON_IsTrue(j)) return msgpack_pack_true(pk);
  if (cJSON_IsFalse(j)) return msgpack_pack_false(pk);
  if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d == floor(d) && d >= -9007199254740992.0 && d <= 9007199254740992.0)
      return msgpack_pack_int64(pk, (int64_t)d);
    return msgpack_pack_double(pk, d);
  }
  if (cJSON_IsString(j)) {
    size_t len = strlen(j->valuestring);
    if (msgpack_pack_str(pk, len) < 0) return MRPC_ENOMEM;
    return msgpack_pack_str_body(pk, j->valuestring, len);
  }
  if (cJSON_IsArray(j) || cJSON_IsObject(j)) {
    int obj = cJSON_IsObject(j), rc;
    for (c = j->child; c; c = c->next) n++;
    rc = obj ? msgpack_pack_map(pk, (size_t)n) : msgpack_pack_array(pk, (size_t)n);
    if (rc < 0) return MRPC_ENOMEM;
    for (c = j->child; c; c = c->next) {
      if (obj) {
        size_t kl = strlen(c->string);
        if (msgpack_pack_str(pk, kl) < 0 || msgpack_pack_str_body(pk, c->string, kl) < 0)
          return MRPC_ENOMEM;
      }
      if ((rc = pack(pk, c, depth + 1, max_depth)) < 0) return rc;
    }
    return 0;
  }
  return MRPC_EENCODE;
}

int mrpc__json_to_msgpack(const cJSON *j, mrpc_buf_t *out, unsigned max_depth) {
  msgpack_packer pk;
  int rc;
  msgpack_packer_init(&pk, out, write_buf);
  rc = pack(&pk, j, 1, max_depth);
  return rc < 0 ? (rc == -1 ? MRPC_ENOMEM : rc) : 0;
}

int mrpc__json_encode(const cJSON *o, int ser, mrpc_buf_t *pack, char **text, const char **p,
                      size_t *n) {
  *text = NULL;
  if (ser == MRPC_SERIALIZE_MSGPACK) {
    int rc;
    pack->len = 0;
    if ((rc = mrpc__json_to_msgpack(o, pack, 64)) < 0) return rc;
    *p = pack->data;
    *n = pack->len;
    return 0;
  }
  if (!(*text = cJSON_PrintUnformatted(o))) return MRPC_ENOMEM;
  *p = *text;
  *n = strlen(*text);
  return 0;
}

cJSON *mrpc__json_decode(const char *data, size_t len, int ser, unsigned max_depth) {
  if (len == 0) return cJSON_CreateObject(); /* no arguments */
  if (ser == MRPC_SERIALIZE_MSGPACK) return mrpc__msgpack_to_json(data, len, max_depth);
  return cJSON_ParseWithLength(data, len);
}
