/* selector_hash.c: ConsistentHash's parts: the key (FNV-1a 64, as rpcx's
 * genKey/HashString), jump consistent hash (as Go's dgryski/go-jump) and
 * the bucket table that keeps servers in place across updates (as
 * edwingeng/doublejump, which rpcx's consistentHashSelector uses). */
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

#define FNV64_OFFSET 14695981039346656037ull
#define FNV64_PRIME 1099511628211ull
/* doublejump scrambles the key with this (MurmurHash64A's multiplier)
 * before looking in the compact array, so that keys which landed in one
 * hole spread over every server instead of following the loose layout. */
#define COMPACT_MIX 0xc6a4a7935bd1e995ull

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  size_t i;

  for (i = 0; i < n; i++) {
    h ^= b[i];
    h *= FNV64_PRIME;
  }
  return h;
}

uint64_t mrpc_select_hash_key(const char *service, const char *method,
                              const char *payload, size_t len) {
  uint64_t h = FNV64_OFFSET;

  /* rpcx: keyString += "/" + toString(opt) for service, method, args. */
  h = fnv1a(h, "/", 1);
  if (service != NULL)
    h = fnv1a(h, service, strlen(service));
  h = fnv1a(h, "/", 1);
  if (method != NULL)
    h = fnv1a(h, method, strlen(method));
  h = fnv1a(h, "/", 1);
  if (payload != NULL)
    h = fnv1a(h, payload, len);
  return h;
}

int32_t mrpc_jump_hash(uint64_t key, int32_t buckets) {
  int64_t b = -1, j = 0;

  if (buckets < 1)
    buckets = 1;
  /* The float arithmetic is the reference's; keep it double, not integer,
   * or the buckets differ from every other implementation. */
  while (j < buckets) {
    b = j;
    key = key * 2862933555777941757ull + 1;
    j = (int64_t)((double)(b + 1) *
                  ((double)(1ll << 31) / (double)((key >> 33) + 1)));
  }
  return (int32_t)b;
}

static int32_t nbuckets(size_t n) {
  return n > INT32_MAX ? INT32_MAX : (int32_t)n;
}

size_t mrpc__ring_get(const mrpc__ring_t *r, uint64_t key) {
  size_t i;

  if (r->nloose == 0)
    return MRPC__NONE;
  i = r->loose[mrpc_jump_hash(key, nbuckets(r->nloose))];
  if (i != MRPC__NONE || r->ncompact == 0)
    return i;
  return r->compact[mrpc_jump_hash(key * COMPACT_MIX, nbuckets(r->ncompact))];
}

void mrpc__ring_free(mrpc__ring_t *r) {
  free(r->loose);
  free(r->holes);
  free(r->compact);
  memset(r, 0, sizeof(*r));
}

/* Every allocation happens first, so a failure leaves nothing half done;
 * then leavers are removed in old order (a hole in loose, a swap-remove in
 * compact), the survivors renumbered, and newcomers added in list order,
 * each filling the most recently freed hole before growing the array. */
int mrpc__ring_rebuild(const mrpc__ring_t *old, const mrpc__slot_t *old_slot,
                       const size_t *old_to_new, size_t n_old,
                       mrpc__slot_t *new_slot, const unsigned char *is_new,
                       size_t n_new, mrpc__ring_t *out) {
  mrpc__ring_t r;
  size_t *cpos, cap, i, k, added = 0;

  for (i = 0; i < n_new; i++)
    added += is_new[i] != 0;
  cap = old->nloose + added + 1;
  memset(&r, 0, sizeof(r));
  r.loose = malloc(cap * sizeof(size_t));
  r.holes = malloc(cap * sizeof(size_t));
  r.compact = malloc(cap * sizeof(size_t));
  cpos = malloc((n_old + 1) * sizeof(size_t));
  if (r.loose == NULL || r.holes == NULL || r.compact == NULL ||
      cpos == NULL) {
    free(cpos);
    mrpc__ring_free(&r);
    return MRPC_ENOMEM;
  }
  if (old->nloose > 0)
    memcpy(r.loose, old->loose, old->nloose * sizeof(size_t));
  if (old->nholes > 0)
    memcpy(r.holes, old->holes, old->nholes * sizeof(size_t));
  if (old->ncompact > 0)
    memcpy(r.compact, old->compact, old->ncompact * sizeof(size_t));
  r.nloose = old->nloose;
  r.nholes = old->nholes;
  r.ncompact = old->ncompact;
  for (i = 0; i < n_old; i++)
    cpos[i] = old_slot[i].cpos;

  for (i = 0; i < n_old; i++) {
    size_t last;

    if (old_to_new[i] != MRPC__NONE)
      continue;
    r.loose[old_slot[i].lpos] = MRPC__NONE;
    r.holes[r.nholes++] = old_slot[i].lpos;
    last = r.compact[--r.ncompact];
    r.compact[cpos[i]] = last;
    cpos[last] = cpos[i];
  }
  for (k = 0; k < r.nloose; k++)
    if (r.loose[k] != MRPC__NONE)
      r.loose[k] = old_to_new[r.loose[k]];
  for (k = 0; k < r.ncompact; k++)
    r.compact[k] = old_to_new[r.compact[k]];
  for (i = 0; i < n_old; i++) {
    if (old_to_new[i] != MRPC__NONE) {
      new_slot[old_to_new[i]].lpos = old_slot[i].lpos;
      new_slot[old_to_new[i]].cpos = cpos[i];
    }
  }
  free(cpos);

  for (i = 0; i < n_new; i++) {
    size_t lp;

    if (!is_new[i])
      continue;
    lp = r.nholes > 0 ? r.holes[--r.nholes] : r.nloose++;
    r.loose[lp] = i;
    r.compact[r.ncompact] = i;
    new_slot[i].lpos = lp;
    new_slot[i].cpos = r.ncompact++;
  }
  *out = r;
  return 0;
}
