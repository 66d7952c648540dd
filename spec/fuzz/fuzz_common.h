/* spec/fuzz/fuzz_common.h: what the libFuzzer harnesses share. A harness
 * checks properties with FUZZ_CHECK, which aborts (a finding libFuzzer
 * saves) with the failed condition; and splits its input into chunks with
 * a small PRNG seeded from the input's leading bytes, so that one input
 * always means the same sequence of reads. */
#ifndef MOONRPC_FUZZ_COMMON_H
#define MOONRPC_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);  \
      abort();                                                                  \
    }                                                                           \
  } while (0)

/* xorshift32: the chunk sizes of one input. */
typedef struct {
  uint32_t s;
} fuzz_rng_t;

static inline void fuzz_rng_init(fuzz_rng_t *r, uint32_t seed) { r->s = seed * 2654435761u + 1; }

static inline uint32_t fuzz_rng_next(fuzz_rng_t *r) {
  uint32_t x = r->s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return r->s = x;
}

/* The next chunk length (1..max, mostly small: a stream cut anywhere). */
static inline size_t fuzz_chunk(fuzz_rng_t *r, size_t max) {
  uint32_t v = fuzz_rng_next(r);
  size_t n = (v & 3) == 0 ? 1 : (v & 3) == 1 ? 1 + (v >> 8) % 7 : 1 + (v >> 8) % 4096;
  return n > max ? max : n;
}

/* A copy in a block of exactly n bytes, so ASan sees any read past it. */
static inline char *fuzz_dup(const void *p, size_t n) {
  char *c = malloc(n ? n : 1);
  FUZZ_CHECK(c);
  if (n) memcpy(c, p, n);
  return c;
}

#endif
