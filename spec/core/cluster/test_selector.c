/* test_selector.c: rpcx's selectors in the C core. The tests check what
 * each mode distributes, not only that it answers: exact sequences and
 * counts for the deterministic modes, bounds for the random ones. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "moonrpc/selector.h"

#define NOPAY NULL, 0

static mrpc_selector_t *mk(mrpc_select_mode_t mode, const mrpc_server_info_t *l,
                           size_t n, const char *group) {
  mrpc_selector_t *s = NULL;

  CHECK_EQ_INT(mrpc_selector_new(mode, 42, &s), 0);
  CHECK_EQ_INT(mrpc_selector_update(s, l, n, group), 0);
  return s;
}

/* The index of the picked address in `l`; -1 when the pick failed. */
static int pick_in(mrpc_selector_t *s, const mrpc_server_info_t *l, size_t n,
                   const char *payload, size_t len, const char *avoid) {
  const char *a = NULL;
  size_t i;

  if (mrpc_selector_select(s, "Arith", "Mul", payload, len, avoid, &a) != 0)
    return -1;
  for (i = 0; i < n; i++)
    if (strcmp(a, l[i].addr) == 0)
      return (int)i;
  return -2;
}

static const mrpc_server_info_t three[] = {
    {"tcp@10.0.0.1:8972", NULL},
    {"tcp@10.0.0.2:8972", ""},
    {"tcp@10.0.0.3:8972", "state=active"}};

static void test_names(void) {
  static const char *names[] = {"RandomSelect",   "RoundRobin",
                                "WeightedRoundRobin", "WeightedICMP",
                                "ConsistentHash", "Closest", "SelectByUser"};
  int i;

  for (i = 0; i < 7; i++) {
    CHECK_EQ_INT(mrpc_select_mode_from_name(names[i]), i);
    CHECK(strcmp(mrpc_select_mode_name((mrpc_select_mode_t)i), names[i]) == 0);
  }
  CHECK_EQ_INT(mrpc_select_mode_from_name("roundrobin"), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_select_mode_from_name(NULL), MRPC_EINVAL);
  CHECK(strcmp(mrpc_select_mode_name((mrpc_select_mode_t)99), "unknown") == 0);
  report("mode names are rpcx's, both ways");
}

static void test_hash_functions(void) {
  /* go-jump's vectors, from the paper's reference C++. */
  static const int32_t dead[] = {0, 1, 2, 3, 3, 5, 5, 5, 5, 5,
                                 5, 5, 5, 5, 5, 5, 16, 16, 16};
  static const int32_t one[] = {0, 0, 0, 0, 0, 0, 6, 6, 6, 6,
                                6, 6, 6, 6, 6, 6, 6, 17, 17};
  int i;

  for (i = 0; i < 19; i++) {
    CHECK_EQ_INT(mrpc_jump_hash(0xdeadbeefull, i + 1), dead[i]);
    CHECK_EQ_INT(mrpc_jump_hash(1, i + 1), one[i]);
    CHECK_EQ_INT(mrpc_jump_hash(0, i + 1), 0);
  }
  CHECK_EQ_INT(mrpc_jump_hash(0xdeadbeefull, 0), 0);
  /* FNV-1a 64 of "///" and of "/Arith/Mul/abc" (rpcx's genKey shape). */
  CHECK(mrpc_select_hash_key(NULL, NULL, NULL, 0) == 0xeed41417e7153e64ull);
  CHECK(mrpc_select_hash_key("Arith", "Mul", "abcdef", 3) ==
        0x36301bc14584dcb6ull);
  report("jump hash matches go-jump; the key is FNV-1a 64 of /svc/method/args");
}

static void test_empty_and_misuse(void) {
  mrpc_selector_t *s = NULL;
  const char *a = "x";
  mrpc_server_info_t bad[] = {{"tcp@10.0.0.1:1", NULL}, {NULL, NULL}};
  int mode;

  for (mode = MRPC_SELECT_RANDOM; mode <= MRPC_SELECT_CONSISTENT_HASH; mode++) {
    CHECK_EQ_INT(mrpc_selector_new((mrpc_select_mode_t)mode, 1, &s), 0);
    CHECK_EQ_INT(mrpc_selector_select(s, "S", "M", NOPAY, NULL, &a),
                 MRPC_ENOSERVER);
    CHECK(a == NULL);
    CHECK_EQ_INT(mrpc_selector_update(s, three, 3, NULL), 0);
    CHECK_EQ_INT(mrpc_selector_update(s, NULL, 0, NULL), 0);
    CHECK_EQ_INT(mrpc_selector_select(s, "S", "M", NOPAY, NULL, &a),
                 MRPC_ENOSERVER);
    mrpc_selector_free(s);
  }
  CHECK_EQ_INT(mrpc_selector_new((mrpc_select_mode_t)7, 1, &s), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_new(MRPC_SELECT_RANDOM, 1, NULL), MRPC_EINVAL);
  s = mk(MRPC_SELECT_ROUNDROBIN, three, 3, NULL);
  /* A bad entry fails the update and leaves the old list. */
  CHECK_EQ_INT(mrpc_selector_update(s, bad, 2, NULL), MRPC_EINVAL);
  bad[1].addr = "";
  CHECK_EQ_INT(mrpc_selector_update(s, bad, 2, NULL), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_update(s, NULL, 1, NULL), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_count(s), 3);
  CHECK(mrpc_selector_address(s, 3) == NULL);
  CHECK(mrpc_selector_meta(s, 3) == NULL);
  CHECK(strcmp(mrpc_selector_meta(s, 0), "") == 0);
  CHECK_EQ_INT(mrpc_selector_weight(s, 3), -1);
  CHECK_EQ_INT(mrpc_selector_select(s, "S", "M", NOPAY, NULL, NULL),
               MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_set_rtt(s, "tcp@nowhere:1", 3), MRPC_ENOSERVER);
  mrpc_selector_free(s);
  mrpc_selector_free(NULL);
  report("empty list -> ENOSERVER; bad input -> EINVAL, old list kept");
}

static void test_random(void) {
  mrpc_selector_t *s = mk(MRPC_SELECT_RANDOM, three, 3, NULL), *t;
  int counts[3] = {0}, i, same = 1;

  for (i = 0; i < 30000; i++) {
    int k = pick_in(s, three, 3, NOPAY, NULL);

    CHECK(k >= 0);
    if (k >= 0)
      counts[k]++;
  }
  for (i = 0; i < 3; i++)
    CHECK(counts[i] >= 9500 && counts[i] <= 10500); /* 10000 +- 5% */
  /* Same seed, same picks. */
  mrpc_selector_free(s);
  s = mk(MRPC_SELECT_RANDOM, three, 3, NULL);
  t = mk(MRPC_SELECT_RANDOM, three, 3, NULL);
  for (i = 0; i < 100; i++)
    same &= pick_in(s, three, 3, NOPAY, NULL) == pick_in(t, three, 3, NOPAY,
                                                         NULL);
  CHECK(same);
  mrpc_selector_free(s);
  mrpc_selector_free(t);
  report("RandomSelect: uniform within 5% over 30000 picks, seeded");
}

static void test_roundrobin(void) {
  mrpc_selector_t *s = mk(MRPC_SELECT_ROUNDROBIN, three, 3, NULL);
  int i;

  for (i = 0; i < 30; i++)
    CHECK_EQ_INT(pick_in(s, three, 3, NOPAY, NULL), i % 3);
  /* rpcx keeps its position across updates (s.i = i + 1 = 3): next is
   * 3 % 2 == 1 of the new list [b, c], then 0, then 1. */
  CHECK_EQ_INT(mrpc_selector_update(s, three + 1, 2, NULL), 0);
  CHECK_EQ_INT(pick_in(s, three, 3, NOPAY, NULL), 2);
  CHECK_EQ_INT(pick_in(s, three, 3, NOPAY, NULL), 1);
  CHECK_EQ_INT(pick_in(s, three, 3, NOPAY, NULL), 2);
  mrpc_selector_free(s);
  report("RoundRobin: exact cycle, position kept across updates");
}

static const mrpc_server_info_t w511[] = {{"a:1", "weight=5"},
                                          {"b:1", "weight=1"},
                                          {"c:1", "group=x&weight=1"}};

static void test_wrr(void) {
  mrpc_selector_t *s = mk(MRPC_SELECT_WEIGHTED_RR, w511, 3, NULL);
  static const int smooth[7] = {0, 0, 1, 0, 2, 0, 0}; /* a a b a c a a */
  int counts[3] = {0}, i;

  for (i = 0; i < 7; i++)
    CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), smooth[i]);
  for (i = 0; i < 700; i++) {
    int k = pick_in(s, w511, 3, NOPAY, NULL);

    if (k >= 0)
      counts[k]++;
  }
  CHECK_EQ_INT(counts[0], 500);
  CHECK_EQ_INT(counts[1], 100);
  CHECK_EQ_INT(counts[2], 100);
  mrpc_selector_free(s);
  report("WeightedRoundRobin 5,1,1: smooth a a b a c a a; 500/100/100 of 700");
}

static void test_wrr_update_keeps_state(void) {
  mrpc_selector_t *s = mk(MRPC_SELECT_WEIGHTED_RR, w511, 3, NULL);
  mrpc_server_info_t moved[4] = {w511[2], w511[0], w511[1],
                                 {"d:1", "weight=0"}};

  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 1);
  /* Same servers, another order, plus one of weight 0: the sequence goes
   * on where it was (a c a a); a reset would restart with a a b. The next
   * cycle breaks the b/c tie by the new order: a a c. */
  CHECK_EQ_INT(mrpc_selector_update(s, moved, 4, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 2);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, w511, 3, NOPAY, NULL), 2);
  mrpc_selector_free(s);
  report("update keeps smooth WRR state for servers that stay");
}

static void test_icmp(void) {
  mrpc_selector_t *s = mk(MRPC_SELECT_WEIGHTED_ICMP, three, 3, NULL);
  static const struct {
    double rtt;
    int w;
  } table[] = {{0, 191},    {5, 191},   {10, 191},  {10.9, 191}, {11, 190},
               {100, 101},  {200, 1},   {200.5, 1}, {201, 1},    {999.9, 1},
               {1000, 0},   {1500, 0},  {-1, 0}};
  int counts[3] = {0}, i;

  CHECK_EQ_INT(mrpc_selector_weight(s, 0), 1); /* not measured yet */
  for (i = 0; i < (int)(sizeof(table) / sizeof(table[0])); i++) {
    CHECK_EQ_INT(mrpc_selector_set_rtt(s, three[0].addr, table[i].rtt), 0);
    CHECK_EQ_INT(mrpc_selector_weight(s, 0), table[i].w);
  }
  CHECK_EQ_INT(mrpc_selector_set_rtt(s, three[0].addr, NAN),
               MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_set_rtt(s, three[0].addr, 5), 0);
  CHECK_EQ_INT(mrpc_selector_set_rtt(s, three[1].addr, 100), 0);
  CHECK_EQ_INT(mrpc_selector_set_rtt(s, three[2].addr, 1500), 0);
  CHECK_EQ_INT(mrpc_selector_weight(s, 1), 101);
  CHECK_EQ_INT(mrpc_selector_weight(s, 2), 0);
  for (i = 0; i < 292 * 3; i++) {
    int k = pick_in(s, three, 3, NOPAY, NULL);

    if (k >= 0)
      counts[k]++;
  }
  CHECK_EQ_INT(counts[0], 191 * 3);
  CHECK_EQ_INT(counts[1], 101 * 3);
  CHECK_EQ_INT(counts[2], 0);
  /* The RTT survives an update; a new server starts unmeasured (1). */
  CHECK_EQ_INT(mrpc_selector_update(s, three + 1, 2, NULL), 0);
  CHECK_EQ_INT(mrpc_selector_weight(s, 0), 101);
  CHECK_EQ_INT(mrpc_selector_weight(s, 1), 0);
  /* Every server at weight 0: they take turns rather than none. */
  CHECK_EQ_INT(mrpc_selector_set_rtt(s, three[1].addr, 2000), 0);
  memset(counts, 0, sizeof(counts));
  for (i = 0; i < 10; i++) {
    int k = pick_in(s, three, 3, NOPAY, NULL);

    if (k >= 0)
      counts[k]++;
  }
  CHECK_EQ_INT(counts[1], 5);
  CHECK_EQ_INT(counts[2], 5);
  mrpc_selector_free(s);
  report("WeightedICMP: rpcx's RTT table, 191/101/0 exactly, 0 never picked");
}

#define NKEYS 10000

static void map_keys(mrpc_selector_t *s, const mrpc_server_info_t *l,
                     size_t n, int *out) {
  char key[32];
  int i;

  for (i = 0; i < NKEYS; i++) {
    int len = snprintf(key, sizeof(key), "key-%d", i);

    out[i] = pick_in(s, l, n, key, (size_t)len, NULL);
  }
}

static void test_consistent_hash(void) {
  static const mrpc_server_info_t five[] = {
      {"tcp@10.0.1.1:8972", NULL}, {"tcp@10.0.1.2:8972", NULL},
      {"tcp@10.0.1.3:8972", NULL}, {"tcp@10.0.1.4:8972", NULL},
      {"tcp@10.0.1.5:8972", NULL}};
  mrpc_server_info_t four_of_five[4] = {five[0], five[1], five[3], five[4]};
  static int before[NKEYS], after[NKEYS], again[NKEYS];
  mrpc_selector_t *s = mk(MRPC_SELECT_CONSISTENT_HASH, five, 4, NULL);
  int i, moved = 0, stray = 0, count[5] = {0};

  map_keys(s, five, 5, before);
  map_keys(s, five, 5, again);
  CHECK(memcmp(before, again, sizeof(before)) == 0);
  for (i = 0; i < NKEYS; i++)
    if (before[i] >= 0)
      count[before[i]]++;
  for (i = 0; i < 4; i++)
    CHECK(count[i] > NKEYS / 4 - 400 && count[i] < NKEYS / 4 + 400);
  CHECK(pick_in(s, five, 5, "x", 1, NULL) == pick_in(s, five, 5, "x", 1, NULL));

  /* A 5th server takes about 1/5 of the keys, and only it gains any. */
  CHECK_EQ_INT(mrpc_selector_update(s, five, 5, NULL), 0);
  map_keys(s, five, 5, after);
  for (i = 0; i < NKEYS; i++) {
    if (after[i] != before[i]) {
      moved++;
      stray += after[i] != 4;
    }
  }
  CHECK(moved <= NKEYS * 22 / 100);
  CHECK(moved >= NKEYS * 15 / 100);
  CHECK_EQ_INT(stray, 0);

  /* Removing server 3 moves its keys only; adding it back fills its hole
   * and restores the same mapping. */
  CHECK_EQ_INT(mrpc_selector_update(s, four_of_five, 4, NULL), 0);
  map_keys(s, five, 5, again);
  stray = 0;
  for (i = 0; i < NKEYS; i++) {
    CHECK(again[i] != 2);
    stray += after[i] != 2 && again[i] != after[i];
  }
  CHECK_EQ_INT(stray, 0);
  CHECK_EQ_INT(mrpc_selector_update(s, five, 5, NULL), 0);
  map_keys(s, five, 5, again);
  CHECK(memcmp(after, again, sizeof(after)) == 0);
  mrpc_selector_free(s);
  report("ConsistentHash: stable; +1 server moves <=22% only to it (jump)");
}

static const mrpc_server_info_t cities[] = {
    {"london:1", "latitude=51.5074&longitude=-0.1278"},
    {"newyork:1", "latitude=40.7128&longitude=-74.0060"},
    {"tokyo:1", "latitude=35.6762&longitude=139.6503"},
    {"nowhere:1", "weight=3"},
    {"broken:1", "latitude=999&longitude=2.35"},
    {"junk:1", "latitude=abc&longitude=2.35"}};

static void test_closest(void) {
  mrpc_selector_t *s = mk(MRPC_SELECT_CLOSEST, cities, 6, NULL);
  mrpc_server_info_t twins[2] = {{"t1:1", "latitude=10&longitude=10"},
                                 {"t2:1", "latitude=10&longitude=10"}};
  const char *a;
  int seen[2] = {0}, i;

  CHECK_EQ_INT(mrpc_selector_select(s, "S", "M", NOPAY, NULL, &a),
               MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_set_point(s, 91, 0), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_set_point(s, 48.8566, 2.3522), 0); /* Paris */
  CHECK_EQ_INT(pick_in(s, cities, 6, NOPAY, NULL), 0);
  CHECK_EQ_INT(pick_in(s, cities, 6, NOPAY, "london:1"), 1);
  CHECK_EQ_INT(mrpc_selector_set_point(s, 34.6937, 135.5023), 0); /* Osaka */
  CHECK_EQ_INT(pick_in(s, cities, 6, NOPAY, NULL), 2);
  CHECK_EQ_INT(mrpc_selector_set_point(s, 42.3601, -71.0589), 0); /* Boston */
  CHECK_EQ_INT(pick_in(s, cities, 6, NOPAY, NULL), 1);
  /* 2.35 E, 999 N would be "nearest" to Paris if it were used. */
  CHECK_EQ_INT(mrpc_selector_set_point(s, 48.8566, 2.3522), 0);
  for (i = 0; i < 50; i++)
    CHECK(pick_in(s, cities, 6, NOPAY, NULL) == 0);
  /* Only servers without a position: nothing to pick. Only one: avoid
   * cannot skip it. */
  CHECK_EQ_INT(mrpc_selector_update(s, cities + 3, 3, NULL), 0);
  CHECK_EQ_INT(mrpc_selector_select(s, "S", "M", NOPAY, NULL, &a),
               MRPC_ENOSERVER);
  CHECK_EQ_INT(mrpc_selector_update(s, cities + 2, 2, NULL), 0);
  CHECK_EQ_INT(pick_in(s, cities, 6, NOPAY, "tokyo:1"), 2);
  /* Equal distances: either, at random. */
  CHECK_EQ_INT(mrpc_selector_update(s, twins, 2, NULL), 0);
  for (i = 0; i < 200; i++) {
    int k = pick_in(s, twins, 2, NOPAY, NULL);

    if (k >= 0)
      seen[k]++;
  }
  CHECK(seen[0] > 60 && seen[1] > 60);
  mrpc_selector_free(s);
  report("Closest: nearest by great circle; no or bad position never picked");
}

typedef struct user_s {
  int calls;
  size_t last_n;
  int saw_payload;
  int answer;
  char first[32];
} user_t;

static int user_fn(void *udata, const mrpc_server_info_t *list, size_t n,
                   const char *service, const char *method,
                   const char *payload, size_t len) {
  user_t *u = udata;

  u->calls++;
  u->last_n = n;
  u->saw_payload = strcmp(service, "Arith") == 0 &&
                   strcmp(method, "Mul") == 0 && len == 2 &&
                   memcmp(payload, "hi", 2) == 0;
  snprintf(u->first, sizeof(u->first), "%s", n > 0 ? list[0].addr : "");
  return u->answer;
}

static void test_user(void) {
  mrpc_server_info_t l[4] = {three[0], three[1], three[2],
                             {"gone:1", "state=inactive"}};
  mrpc_selector_t *s = mk(MRPC_SELECT_USER, l, 4, NULL);
  user_t u = {0};
  const char *a;

  CHECK_EQ_INT(mrpc_selector_select(s, "S", "M", NOPAY, NULL, &a),
               MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_set_user(s, NULL, NULL), MRPC_EINVAL);
  CHECK_EQ_INT(mrpc_selector_set_user(s, user_fn, &u), 0);
  u.answer = 2;
  CHECK_EQ_INT(pick_in(s, l, 4, "hi", 2, NULL), 2);
  CHECK_EQ_INT(u.calls, 1);
  CHECK_EQ_INT(u.last_n, 3); /* the inactive one is not offered */
  CHECK(u.saw_payload);
  /* With avoid, the function sees the others and its index maps back. */
  u.answer = 0;
  CHECK_EQ_INT(pick_in(s, l, 4, "hi", 2, three[0].addr), 1);
  CHECK_EQ_INT(u.last_n, 2);
  CHECK(strcmp(u.first, three[1].addr) == 0);
  u.answer = -1;
  CHECK_EQ_INT(pick_in(s, l, 4, "hi", 2, NULL), -1);
  u.answer = 3;
  CHECK_EQ_INT(pick_in(s, l, 4, "hi", 2, NULL), -1);
  mrpc_selector_free(s);
  report("SelectByUser: the callback gets the live list; bad index fails");
}

static void test_group_and_state(void) {
  static const mrpc_server_info_t l[] = {
      {"a:1", "group=blue&state=active"},
      {"b:1", "group=red"},
      {"c:1", "weight=2"},
      {"d:1", "group=red&group=blue"},
      {"e:1", "group=blue&state=inactive"},
      {"f:1", "state=inactive&group=blue&%zz"}, /* Go rejects: kept */
      {"g:1", "state=inactive;group=red"},      /* ';' too: kept */
      {"a:1", "group=red"}};                    /* repeat: first wins */
  mrpc_selector_t *s = mk(MRPC_SELECT_ROUNDROBIN, l, 8, "blue");

  CHECK_EQ_INT(mrpc_selector_count(s), 4);
  CHECK(strcmp(mrpc_selector_address(s, 0), "a:1") == 0);
  CHECK(strcmp(mrpc_selector_address(s, 1), "d:1") == 0);
  CHECK(strcmp(mrpc_selector_address(s, 2), "f:1") == 0);
  CHECK(strcmp(mrpc_selector_address(s, 3), "g:1") == 0);
  /* Filtering comes first: the second a:1 (red) is the one kept. */
  CHECK_EQ_INT(mrpc_selector_update(s, l, 8, "red"), 0);
  CHECK_EQ_INT(mrpc_selector_count(s), 5); /* b d f g a */
  CHECK(strcmp(mrpc_selector_address(s, 0), "b:1") == 0);
  CHECK(strcmp(mrpc_selector_address(s, 4), "a:1") == 0);
  CHECK(strcmp(mrpc_selector_meta(s, 4), "group=red") == 0);
  /* No group: every group, still without the inactive one. */
  CHECK_EQ_INT(mrpc_selector_update(s, l, 8, NULL), 0);
  CHECK_EQ_INT(mrpc_selector_count(s), 6);
  CHECK(strcmp(mrpc_selector_meta(s, 0), "group=blue&state=active") == 0);
  CHECK_EQ_INT(mrpc_selector_update(s, l, 8, ""), 0);
  CHECK_EQ_INT(mrpc_selector_count(s), 6);
  mrpc_selector_free(s);
  report("group filter and state=inactive as rpcx's filterByStateAndGroup");
}

static void test_avoid(void) {
  int mode, i;

  for (mode = MRPC_SELECT_RANDOM; mode <= MRPC_SELECT_CONSISTENT_HASH; mode++) {
    mrpc_selector_t *s = mk((mrpc_select_mode_t)mode, three, 3, NULL);
    int hit = 0, other = 0;

    for (i = 0; i < 300; i++) {
      char key[16];
      int len = snprintf(key, sizeof(key), "k%d", i);
      int k = pick_in(s, three, 3, key, (size_t)len, three[1].addr);

      hit += k == 1;
      other += k == 0 || k == 2;
    }
    CHECK_EQ_INT(hit, 0);
    CHECK_EQ_INT(other, 300);
    CHECK_EQ_INT(pick_in(s, three, 3, "k", 1, "tcp@not-in-list:1") >= 0, 1);
    CHECK_EQ_INT(mrpc_selector_update(s, three + 1, 1, NULL), 0);
    CHECK_EQ_INT(pick_in(s, three, 3, "k", 1, three[1].addr), 1);
    mrpc_selector_free(s);
  }
  report("avoid skips a server when others exist, returns it when alone");
}

static void test_bad_metadata(void) {
  static const mrpc_server_info_t l[] = {
      {"abc:1", "weight=abc"},      {"neg:1", "weight=-3"},
      {"plus:1", "weight=%2B4"},    {"huge:1", "weight=99999999999999999999"},
      {"big:1", "weight=2000000"},  {"empty:1", "weight="},
      {"esc:1", "weight=7&x=%zz"},  {"spc:1", "weight= 4"},
      {"first:1", "weight=2&weight=9"}};
  static const int64_t want[] = {1, 0, 4, 1, MRPC_SELECT_MAX_WEIGHT,
                                 1, 1, 1, 2};
  mrpc_selector_t *s = mk(MRPC_SELECT_WEIGHTED_RR, l, 9, NULL);
  size_t i;
  int neg = 0;

  for (i = 0; i < 9; i++)
    CHECK_EQ_INT(mrpc_selector_weight(s, i), want[i]);
  for (i = 0; i < 2000; i++)
    neg += pick_in(s, l, 9, NOPAY, NULL) == 1;
  CHECK_EQ_INT(neg, 0);
  mrpc_selector_free(s);
  report("malformed metadata: weight=abc -> 1, -3 -> 0 (never), caps, escapes");
}

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  test_names();
  test_hash_functions();
  test_empty_and_misuse();
  test_random();
  test_roundrobin();
  test_wrr();
  test_wrr_update_keeps_state();
  test_icmp();
  test_consistent_hash();
  test_closest();
  test_user();
  test_group_and_state();
  test_avoid();
  test_bad_metadata();
  return finish();
}
