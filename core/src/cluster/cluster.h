/* cluster/cluster.h (internal): rpcx's selectors, the part of the cluster
 * client that lives in C (public contracts in moonrpc/selector.h; the fail
 * modes, broadcast and fork are in the Lua xclient above it). The files
 * share what this header holds: the parsed metadata of one server
 * (selector_meta.c, which also measures distance for Closest) and the
 * consistent-hash bucket table (selector_hash.c); selector.c, the selector
 * object and each mode's pick, sits on top of both. The cluster is pure
 * code: it calls only base/ and libm, no socket, no loop. */
#ifndef MOONRPC_CLUSTER_H
#define MOONRPC_CLUSTER_H

#include "moonrpc/selector.h"

#define MRPC__NONE ((size_t)-1)

/* One server's metadata as rpcx reads it. `ok` is 0 when Go's
 * url.ParseQuery would return an error; rpcx then ignores the metadata
 * whole, and so do the fields below (weight 1, no position, not filtered). */
typedef struct mrpc__meta_s {
  int ok;
  int inactive;    /* the first state= value is "inactive" */
  int in_group;    /* some group= value equals the group asked for */
  int64_t weight;  /* weight=, capped to [0, MRPC_SELECT_MAX_WEIGHT] */
  int has_geo;     /* latitude= and longitude= both valid */
  double lat, lon;
} mrpc__meta_t;

/* Parses `meta` (NULL is ""), checking group= against `group` (NULL or ""
 * matches nothing). 0 or MRPC_ENOMEM. */
int mrpc__meta_parse(const char *meta, const char *group, mrpc__meta_t *out);

/* Great-circle distance in metres, rpcx's getDistanceFrom (haversine on a
 * sphere of radius 6378100 m). */
double mrpc__geo_distance(double lat1, double lon1, double lat2, double lon2);

/* The consistent-hash table, doublejump's design (the library rpcx uses):
 * a "loose" array where a removed server leaves a hole that the next added
 * server fills, so the servers that stay keep their bucket and jump hash
 * moves only the keys of servers that came or went; and a "compact" array
 * (swap-remove) that answers the keys that land in a hole. Entries are
 * indices into the selector's live server array; MRPC__NONE is a hole. */
/* Its arrays are owned and freed by mrpc__ring_free. */
typedef struct mrpc__ring_s {
  size_t *loose;
  size_t nloose;
  size_t *holes; /* free loose positions, reused last-freed first */
  size_t nholes;
  size_t *compact;
  size_t ncompact;
} mrpc__ring_t;

/* Where a live server sits in the ring. */
typedef struct mrpc__slot_s {
  size_t lpos, cpos;
} mrpc__slot_t;

/* Builds the ring for a new server list from the old ring. `old_slot[i]`
 * is old server i's place; `old_to_new[i]` its new index or MRPC__NONE
 * when it left. `new_slot` (n_new entries) receives every new server's
 * place; `is_new[j]` marks servers to add, in order. The old ring is left
 * as it was; `out` is fresh. 0 or MRPC_ENOMEM. */
int mrpc__ring_rebuild(const mrpc__ring_t *old, const mrpc__slot_t *old_slot,
                       const size_t *old_to_new, size_t n_old,
                       mrpc__slot_t *new_slot, const unsigned char *is_new,
                       size_t n_new, mrpc__ring_t *out);
void mrpc__ring_free(mrpc__ring_t *r);
/* The live server index for `key`; MRPC__NONE when the ring is empty. */
size_t mrpc__ring_get(const mrpc__ring_t *r, uint64_t key);

#endif
