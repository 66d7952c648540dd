/* moonrpc/selector.h: rpcx's server selectors, as a pure module.
 *
 * A selector holds the live server list of one service (address plus the
 * rpcx metadata query string a registry published for it) and picks one
 * server per call, by one of rpcx's select modes. It knows nothing of
 * sockets, loops or clocks: round-trip times for WeightedICMP and the
 * client's position for Closest are fed in by the host, and randomness
 * comes from a PRNG (splitmix64) seeded by the caller, so a test with a
 * fixed seed sees the same picks every run.
 *
 * Metadata is parsed the way rpcx parses it (Go's url.ParseQuery):
 *   weight=N      WeightedRoundRobin weight; absent or not an integer: 1.
 *                 rpcx uses a negative weight as is, which breaks smooth
 *                 round robin; here it counts as 0. A weight of 0 is never
 *                 picked while a server with a positive weight can be (if
 *                 all candidates weigh 0, they take turns).
 *                 Weights above MRPC_SELECT_MAX_WEIGHT are capped.
 *   state=inactive  the server is hidden (rpcx's filterByStateAndGroup).
 *   group=G       may repeat; with a group given to mrpc_selector_update
 *                 only servers listing that group are kept.
 *   latitude=, longitude=  decimal degrees, for Closest. A server without
 *                 both, or with a value that is not a number, is never
 *                 picked by Closest (as in rpcx). Unlike rpcx, values
 *                 outside [-90, 90] / [-180, 180] count as absent too.
 * Like rpcx, a metadata string Go's parser rejects (a bad %-escape, a ';')
 * is ignored whole: the server is kept, with weight 1 and no position.
 *
 * A selector is not thread-safe; one loop thread owns it. */
#ifndef MOONRPC_SELECTOR_H
#define MOONRPC_SELECTOR_H

#include <stddef.h>
#include <stdint.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The largest weight= honoured; larger values are capped to it. It keeps
 * smooth round robin's running sums far from overflow. */
#define MRPC_SELECT_MAX_WEIGHT 1000000

/* One server as a registry describes it. Both strings are borrowed by
 * mrpc_selector_update (copied before it returns). `meta` may be NULL. */
typedef struct mrpc_server_info_s {
  const char *addr; /* "tcp@127.0.0.1:8972" or "127.0.0.1:8972" */
  const char *meta; /* "weight=10&group=a&state=active&latitude=..." */
} mrpc_server_info_t;

/* rpcx's select modes, in rpcx's order (SelectByUser is 1000 in rpcx). */
typedef enum {
  MRPC_SELECT_RANDOM,
  MRPC_SELECT_ROUNDROBIN,
  MRPC_SELECT_WEIGHTED_RR,
  MRPC_SELECT_WEIGHTED_ICMP,
  MRPC_SELECT_CONSISTENT_HASH,
  MRPC_SELECT_CLOSEST,
  MRPC_SELECT_USER
} mrpc_select_mode_t;

/* rpcx's name of a mode ("RandomSelect", "RoundRobin", "WeightedRoundRobin",
 * "WeightedICMP", "ConsistentHash", "Closest", "SelectByUser") to the mode;
 * MRPC_EINVAL for any other name or NULL. Case-sensitive, as in rpcx. */
int mrpc_select_mode_from_name(const char *name);
/* The rpcx name of a mode; "unknown" for a value outside the enum. */
const char *mrpc_select_mode_name(mrpc_select_mode_t mode);

typedef struct mrpc_selector_s mrpc_selector_t;

/* SelectByUser's function: returns the index in `list` of the server to
 * use, or anything outside [0, n) for none (the pick then fails with
 * MRPC_ENOSERVER). `list` is valid only during the call and is the live
 * list, minus the `avoid` server when one was given and others exist. */
typedef int (*mrpc_select_fn)(void *udata, const mrpc_server_info_t *list,
                              size_t n, const char *service,
                              const char *method, const char *payload,
                              size_t len);

/* Creates an empty selector. `seed` seeds its PRNG (RandomSelect, ties in
 * Closest); any value is fine. 0, MRPC_EINVAL (bad mode or NULL out) or
 * MRPC_ENOMEM. */
int mrpc_selector_new(mrpc_select_mode_t mode, uint64_t seed,
                      mrpc_selector_t **out);
/* Frees the selector and every string it copied. NULL is fine. */
void mrpc_selector_free(mrpc_selector_t *s);

/* Replaces the server list with `list[0..n)`: copies the strings, parses
 * the metadata, drops state=inactive servers and, when `group` is neither
 * NULL nor "", servers that do not list that group (with no group, all
 * groups are kept, as in rpcx). A repeated address keeps its first entry.
 * Servers that stay (same address) keep their state: smooth round robin's
 * current weight, their RTT, their consistent-hash bucket. The round robin
 * position is kept too. Addresses returned earlier become invalid.
 * 0, MRPC_EINVAL (NULL or empty address, NULL list with n > 0) or
 * MRPC_ENOMEM; on error the old list is untouched. */
int mrpc_selector_update(mrpc_selector_t *s, const mrpc_server_info_t *list,
                         size_t n, const char *group);

/* Records a measured round-trip time for WeightedICMP, which turns it into
 * a weight with rpcx's table (CalculateWeight, on whole milliseconds):
 *   rtt <= 10 ms: 191;  <= 200 ms: 201 - rtt;  < 1000 ms: 1;  else 0.
 * A negative rtt_ms records a failed ping: weight 0, like rpcx's 1000 ms
 * default. A server never measured has weight 1. The RTT survives updates
 * while the server stays. 0, MRPC_EINVAL (NaN) or MRPC_ENOSERVER (no live
 * server has that address). */
int mrpc_selector_set_rtt(mrpc_selector_t *s, const char *addr,
                          double rtt_ms);

/* Sets the client's position for Closest, in decimal degrees. 0 or
 * MRPC_EINVAL (out of range or not finite). Until it is set, Closest picks
 * fail with MRPC_EINVAL (rpcx has no Closest selector before
 * ConfigGeoSelector). */
int mrpc_selector_set_point(mrpc_selector_t *s, double latitude,
                            double longitude);

/* Sets SelectByUser's function. 0 or MRPC_EINVAL (NULL fn). Until it is
 * set, SelectByUser picks fail with MRPC_EINVAL. */
int mrpc_selector_set_user(mrpc_selector_t *s, mrpc_select_fn fn,
                           void *udata);

/* Picks a server for one call. `service` and `method` may be NULL (as "");
 * `payload` is the serialized arguments, used only by ConsistentHash (see
 * mrpc_select_hash_key). `avoid`, when not NULL, is an address to skip if
 * any other server could be picked (Failover's retry); when it is the only
 * candidate it is returned. On success *addr_out is the selector's copy of
 * the address, valid until the next update or free.
 * 0, MRPC_ENOSERVER (no candidate), or MRPC_EINVAL (NULL s or addr_out;
 * Closest without a point; SelectByUser without a function). */
int mrpc_selector_select(mrpc_selector_t *s, const char *service,
                         const char *method, const char *payload, size_t len,
                         const char *avoid, const char **addr_out);

/* The number of live servers (after the state and group filters; Closest
 * may still be unable to pick some of them). */
size_t mrpc_selector_count(const mrpc_selector_t *s);
/* The i-th live server's address / metadata, in update order; NULL when i
 * is out of range. Valid until the next update or free. */
const char *mrpc_selector_address(const mrpc_selector_t *s, size_t i);
const char *mrpc_selector_meta(const mrpc_selector_t *s, size_t i);
/* The weight the i-th live server has in this selector's mode: weight= for
 * WeightedRoundRobin, the RTT weight for WeightedICMP, 1 otherwise;
 * -1 when i is out of range. */
int64_t mrpc_selector_weight(const mrpc_selector_t *s, size_t i);

/* ConsistentHash's key, as rpcx's genKey builds it: FNV-1a 64 over
 * "/" service "/" method "/" args. rpcx formats args with Go's "%v" on the
 * unserialized value, which no other language can reproduce; moonrpc
 * hashes the serialized payload bytes instead, so equal arguments map to
 * the same server as long as the codec is deterministic. */
uint64_t mrpc_select_hash_key(const char *service, const char *method,
                              const char *payload, size_t len);
/* Jump consistent hash (Lamping and Veach, 2014), bit for bit as Go's
 * github.com/dgryski/go-jump: a bucket in [0, buckets); buckets < 1
 * counts as 1. */
int32_t mrpc_jump_hash(uint64_t key, int32_t buckets);

#ifdef __cplusplus
}
#endif
#endif
