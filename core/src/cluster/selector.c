/* selector.c: the selector object: its server list and how an update
 * carries per-server state over, and the pick for each of rpcx's modes
 * (client/selector.go, smooth_weighted_round_robin.go, ping_utils.go). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

typedef struct server_s {
  char *addr;      /* owned */
  char *meta;      /* owned; "" when the registry gave none */
  int64_t weight;  /* weight=, see selector.h */
  int64_t current; /* smooth round robin's running weight */
  int rtt_set;     /* a WeightedICMP measurement was recorded */
  double rtt_ms;   /* that measurement; < 0: the ping failed */
  int has_geo;
  double lat, lon;
} server_t;

/* Every array below is owned: free_owned releases them when an update
 * replaces the list, and mrpc_selector_free through it. */
struct mrpc_selector_s {
  mrpc_select_mode_t mode;
  uint64_t rng;                /* splitmix64 state */
  server_t *srv;               /* the live list, in update order */
  size_t n;
  size_t *sorted;              /* indices into srv, by address */
  mrpc_server_info_t *infos;   /* n views of srv, for SelectByUser */
  mrpc_server_info_t *scratch; /* n entries: infos minus `avoid` */
  mrpc__slot_t *slots;         /* each server's place in `ring` */
  mrpc__ring_t ring;           /* ConsistentHash buckets */
  size_t rr;                   /* RoundRobin's next position */
  int has_point;
  double lat, lon;
  mrpc_select_fn user_fn;
  void *user_udata;            /* not owned: SelectByUser's host data */
};

static const char *const mode_names[] = {
    "RandomSelect", "RoundRobin", "WeightedRoundRobin", "WeightedICMP",
    "ConsistentHash", "Closest", "SelectByUser"};

int mrpc_select_mode_from_name(const char *name) {
  int i;

  for (i = 0; name != NULL && i <= MRPC_SELECT_USER; i++)
    if (strcmp(name, mode_names[i]) == 0)
      return i;
  return MRPC_EINVAL;
}

const char *mrpc_select_mode_name(mrpc_select_mode_t mode) {
  return (unsigned)mode <= MRPC_SELECT_USER ? mode_names[mode] : "unknown";
}

static uint64_t rng_next(uint64_t *st) {
  uint64_t z = (*st += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, n); the modulo bias is below n / 2^64. */
static size_t rng_below(uint64_t *st, size_t n) {
  return (size_t)(rng_next(st) % n);
}

int mrpc_selector_new(mrpc_select_mode_t mode, uint64_t seed,
                      mrpc_selector_t **out) {
  mrpc_selector_t *s;

  if (out == NULL || (unsigned)mode > MRPC_SELECT_USER)
    return MRPC_EINVAL;
  s = calloc(1, sizeof(*s));
  if (s == NULL)
    return MRPC_ENOMEM;
  s->mode = mode;
  s->rng = seed;
  *out = s;
  return 0;
}

static void free_list(server_t *srv, size_t n) {
  size_t i;

  for (i = 0; i < n; i++) {
    free(srv[i].addr);
    free(srv[i].meta);
  }
  free(srv);
}

/* Frees what the current server list owns (servers, their views, the
 * hash ring); the caller replaces or drops the pointers. */
static void free_owned(mrpc_selector_t *s) {
  free_list(s->srv, s->n);
  free(s->sorted);
  free(s->infos);
  free(s->scratch);
  free(s->slots);
  mrpc__ring_free(&s->ring);
}

void mrpc_selector_free(mrpc_selector_t *s) {
  if (s == NULL)
    return;
  free_owned(s);
  free(s);
}

typedef struct sort_key_s {
  const char *addr;
  size_t i;
} sort_key_t;

/* By address, then by position, so the first of equal addresses sorts
 * first and wins. */
static int by_addr(const void *a, const void *b) {
  const sort_key_t *x = a, *y = b;
  int c = strcmp(x->addr, y->addr);

  return c != 0 ? c : (x->i > y->i) - (x->i < y->i);
}

/* Fills sorted[0..n) with the indices of srv in address order. `keys` is
 * scratch room for n entries. */
static void sort_list(const server_t *srv, size_t n, sort_key_t *keys,
                      size_t *sorted) {
  size_t i;

  for (i = 0; i < n; i++) {
    keys[i].addr = srv[i].addr;
    keys[i].i = i;
  }
  qsort(keys, n, sizeof(*keys), by_addr);
  for (i = 0; i < n; i++)
    sorted[i] = keys[i].i;
}

/* Index of `addr` among srv/sorted, or MRPC__NONE. */
static size_t find(const server_t *srv, const size_t *sorted, size_t n,
                   const char *addr) {
  size_t lo = 0, hi = n;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(addr, srv[sorted[mid]].addr);

    if (c == 0)
      return sorted[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return MRPC__NONE;
}

/* Builds the new list (filtered, copied, deduplicated, sorted index) in
 * fresh memory, carries state over from the old one, and only then swaps
 * it in, so that any failure leaves the selector as it was. */
int mrpc_selector_update(mrpc_selector_t *s, const mrpc_server_info_t *list,
                         size_t n, const char *group) {
  int filter_group = group != NULL && *group != '\0';
  server_t *ns = NULL;
  size_t *sorted = NULL, *old_to_new = NULL, i, m = 0, keep = 0;
  mrpc_server_info_t *infos = NULL, *scratch = NULL;
  mrpc__slot_t *slots = NULL;
  unsigned char *is_new = NULL;
  sort_key_t *keys = NULL;
  mrpc__ring_t ring;
  int rc = MRPC_ENOMEM;

  if (s == NULL || (n > 0 && list == NULL))
    return MRPC_EINVAL;
  for (i = 0; i < n; i++)
    if (list[i].addr == NULL || list[i].addr[0] == '\0')
      return MRPC_EINVAL;
  memset(&ring, 0, sizeof(ring));
  ns = calloc(n + 1, sizeof(*ns));
  sorted = malloc((n + 1) * sizeof(size_t));
  keys = malloc((n + 1) * sizeof(*keys));
  if (ns == NULL || sorted == NULL || keys == NULL)
    goto fail;

  for (i = 0; i < n; i++) {
    mrpc__meta_t pm;
    const char *meta = list[i].meta != NULL ? list[i].meta : "";

    if (mrpc__meta_parse(meta, group, &pm) < 0)
      goto fail;
    /* filterByStateAndGroup skips a server whose metadata fails to parse. */
    if (pm.ok && (pm.inactive || (filter_group && !pm.in_group)))
      continue;
    ns[m].addr = strdup(list[i].addr);
    ns[m].meta = strdup(meta);
    if (ns[m].addr == NULL || ns[m].meta == NULL) {
      m++;
      goto fail;
    }
    ns[m].weight = pm.weight;
    ns[m].has_geo = pm.has_geo;
    ns[m].lat = pm.lat;
    ns[m].lon = pm.lon;
    m++;
  }

  /* Drop repeated addresses, keeping the first, and keep update order. */
  sort_list(ns, m, keys, sorted);
  for (i = 1; i < m; i++)
    if (strcmp(keys[i].addr, keys[i - 1].addr) == 0)
      ns[keys[i].i].addr = NULL; /* freed just below, through keys[i] */
  for (i = 0; i < m; i++) {
    if (ns[keys[i].i].addr == NULL) {
      free((char *)keys[i].addr);
      free(ns[keys[i].i].meta);
    }
  }
  for (i = 0; i < m; i++)
    if (ns[i].addr != NULL)
      ns[keep++] = ns[i];
  m = keep;
  sort_list(ns, m, keys, sorted);

  infos = malloc((m + 1) * sizeof(*infos));
  scratch = malloc((m + 1) * sizeof(*scratch));
  slots = calloc(m + 1, sizeof(*slots));
  is_new = calloc(m + 1, 1);
  old_to_new = malloc((s->n + 1) * sizeof(size_t));
  if (infos == NULL || scratch == NULL || slots == NULL || is_new == NULL ||
      old_to_new == NULL)
    goto fail;
  for (i = 0; i < s->n; i++)
    old_to_new[i] = MRPC__NONE;
  for (i = 0; i < m; i++) {
    size_t o = find(s->srv, s->sorted, s->n, ns[i].addr);

    infos[i].addr = ns[i].addr;
    infos[i].meta = ns[i].meta;
    is_new[i] = o == MRPC__NONE;
    if (o == MRPC__NONE)
      continue;
    old_to_new[o] = i;
    ns[i].current = s->srv[o].current;
    ns[i].rtt_set = s->srv[o].rtt_set;
    ns[i].rtt_ms = s->srv[o].rtt_ms;
  }
  if (s->mode == MRPC_SELECT_CONSISTENT_HASH &&
      mrpc__ring_rebuild(&s->ring, s->slots, old_to_new, s->n, slots, is_new,
                         m, &ring) < 0)
    goto fail;

  free_owned(s);
  s->srv = ns;
  s->n = m;
  s->sorted = sorted;
  s->infos = infos;
  s->scratch = scratch;
  s->slots = slots;
  s->ring = ring;
  free(is_new);
  free(old_to_new);
  free(keys);
  return 0;

fail:
  if (ns != NULL)
    free_list(ns, m);
  free(sorted);
  free(infos);
  free(scratch);
  free(slots);
  free(is_new);
  free(old_to_new);
  free(keys);
  return rc;
}

int mrpc_selector_set_rtt(mrpc_selector_t *s, const char *addr,
                          double rtt_ms) {
  size_t i;

  if (s == NULL || addr == NULL || isnan(rtt_ms))
    return MRPC_EINVAL;
  i = find(s->srv, s->sorted, s->n, addr);
  if (i == MRPC__NONE)
    return MRPC_ENOSERVER;
  s->srv[i].rtt_set = 1;
  s->srv[i].rtt_ms = rtt_ms;
  return 0;
}

int mrpc_selector_set_point(mrpc_selector_t *s, double latitude,
                            double longitude) {
  if (s == NULL || !isfinite(latitude) || !isfinite(longitude) ||
      fabs(latitude) > 90 || fabs(longitude) > 180)
    return MRPC_EINVAL;
  s->has_point = 1;
  s->lat = latitude;
  s->lon = longitude;
  return 0;
}

int mrpc_selector_set_user(mrpc_selector_t *s, mrpc_select_fn fn,
                           void *udata) {
  if (s == NULL || fn == NULL)
    return MRPC_EINVAL;
  s->user_fn = fn;
  s->user_udata = udata;
  return 0;
}

size_t mrpc_selector_count(const mrpc_selector_t *s) {
  return s != NULL ? s->n : 0;
}

const char *mrpc_selector_address(const mrpc_selector_t *s, size_t i) {
  return s != NULL && i < s->n ? s->srv[i].addr : NULL;
}

const char *mrpc_selector_meta(const mrpc_selector_t *s, size_t i) {
  return s != NULL && i < s->n ? s->srv[i].meta : NULL;
}

/* ping_utils.go's CalculateWeight on rpcx's whole milliseconds
 * (int(AvgRtt) / 1e6 truncates). */
static int64_t icmp_weight(const server_t *sv) {
  double t;

  if (!sv->rtt_set)
    return 1;
  t = sv->rtt_ms;
  if (t < 0 || t >= 1000)
    return 0;
  if (t < 11)
    return 191;
  if (t < 201)
    return 201 - (int64_t)t;
  return 1;
}

static int64_t weight_of(const mrpc_selector_t *s, size_t i) {
  if (s->mode == MRPC_SELECT_WEIGHTED_RR)
    return s->srv[i].weight;
  if (s->mode == MRPC_SELECT_WEIGHTED_ICMP)
    return icmp_weight(&s->srv[i]);
  return 1;
}

int64_t mrpc_selector_weight(const mrpc_selector_t *s, size_t i) {
  return s != NULL && i < s->n ? weight_of(s, i) : -1;
}

/* nginx's smooth weighted round robin (rpcx's nextWeighted): every
 * candidate's current weight grows by its weight, the largest (first on a
 * tie) is picked and loses the total. `skip` sits the round out, as nginx
 * does with a peer already tried. A zero weight sits out too, unless every
 * candidate has one; then all count as 1, which is plain round robin
 * (rpcx would return one fixed server). */
static size_t smooth_pick(mrpc_selector_t *s, size_t skip) {
  int64_t total = 0, w;
  size_t i, best = MRPC__NONE;
  int equal;

  for (i = 0; i < s->n; i++)
    if (i != skip)
      total += weight_of(s, i);
  equal = total == 0;
  total = 0;
  for (i = 0; i < s->n; i++) {
    if (i == skip)
      continue;
    w = equal ? 1 : weight_of(s, i);
    if (w == 0)
      continue;
    s->srv[i].current += w;
    total += w;
    if (best == MRPC__NONE || s->srv[i].current > s->srv[best].current)
      best = i;
  }
  if (best != MRPC__NONE)
    s->srv[best].current -= total;
  return best;
}

/* geoSelector.Select: the nearest server that has a position; equal
 * distances are broken at random. */
static size_t closest_pick(mrpc_selector_t *s, size_t skip) {
  size_t i, best = MRPC__NONE, ties = 0;
  double min = HUGE_VAL;

  for (i = 0; i < s->n; i++) {
    double d;

    if (i == skip || !s->srv[i].has_geo)
      continue;
    d = mrpc__geo_distance(s->lat, s->lon, s->srv[i].lat, s->srv[i].lon);
    if (d < min) {
      min = d;
      best = i;
      ties = 1;
    } else if (d == min && rng_below(&s->rng, ++ties) == 0) {
      best = i; /* reservoir sampling: each tie ends up with 1/ties */
    }
  }
  return best;
}

static size_t user_pick(mrpc_selector_t *s, size_t skip, const char *service,
                        const char *method, const char *payload,
                        size_t len) {
  const mrpc_server_info_t *list = s->infos;
  size_t n = s->n, i, k = 0;
  int r;

  if (skip != MRPC__NONE) {
    for (i = 0; i < s->n; i++)
      if (i != skip)
        s->scratch[k++] = s->infos[i];
    list = s->scratch;
    n = k;
  }
  r = s->user_fn(s->user_udata, list, n, service, method, payload, len);
  if (r < 0 || (size_t)r >= n)
    return MRPC__NONE;
  if (skip != MRPC__NONE && (size_t)r >= skip)
    r++;
  return (size_t)r;
}

int mrpc_selector_select(mrpc_selector_t *s, const char *service,
                         const char *method, const char *payload, size_t len,
                         const char *avoid, const char **addr_out) {
  size_t i = MRPC__NONE, skip = MRPC__NONE;

  if (s == NULL || addr_out == NULL)
    return MRPC_EINVAL;
  *addr_out = NULL;
  if (s->mode == MRPC_SELECT_CLOSEST && !s->has_point)
    return MRPC_EINVAL;
  if (s->mode == MRPC_SELECT_USER && s->user_fn == NULL)
    return MRPC_EINVAL;
  if (s->n == 0)
    return MRPC_ENOSERVER;
  if (avoid != NULL && s->n > 1)
    skip = find(s->srv, s->sorted, s->n, avoid);

  switch (s->mode) {
  case MRPC_SELECT_RANDOM:
    i = rng_below(&s->rng, s->n - (skip != MRPC__NONE));
    if (skip != MRPC__NONE && i >= skip)
      i++;
    break;
  case MRPC_SELECT_ROUNDROBIN:
    /* rpcx: i = s.i % len(ss); s.i = i + 1. */
    i = s->rr % s->n;
    s->rr = i + 1;
    if (i == skip) {
      i = s->rr % s->n;
      s->rr = i + 1;
    }
    break;
  case MRPC_SELECT_WEIGHTED_RR:
  case MRPC_SELECT_WEIGHTED_ICMP:
    i = smooth_pick(s, skip);
    break;
  case MRPC_SELECT_CONSISTENT_HASH: {
    uint64_t key = mrpc_select_hash_key(service, method, payload, len);

    i = mrpc__ring_get(&s->ring, key);
    if (i != MRPC__NONE && i == skip) {
      /* Another server, still chosen by the key alone. */
      i = (size_t)mrpc_jump_hash(key ^ 0x9e3779b97f4a7c15ull,
                                 (int32_t)(s->n - 1));
      if (i >= skip)
        i++;
    }
    break;
  }
  case MRPC_SELECT_CLOSEST:
    i = closest_pick(s, skip);
    if (i == MRPC__NONE && skip != MRPC__NONE)
      i = closest_pick(s, MRPC__NONE); /* `avoid` is the only candidate */
    break;
  case MRPC_SELECT_USER:
    i = user_pick(s, skip, service, method, payload, len);
    break;
  }
  if (i == MRPC__NONE)
    return MRPC_ENOSERVER;
  *addr_out = s->srv[i].addr;
  return 0;
}
