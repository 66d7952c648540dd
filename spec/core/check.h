/* check.h: the small harness every C test shares: CHECK macros that note a
 * failure without stopping, report() that prints one TAP-like line per
 * test, and finish() that prints the closing "N passed, N failed" line and
 * gives the exit status. */
#ifndef MRPC_SPEC_CHECK_H
#define MRPC_SPEC_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* 1 in a build under AddressSanitizer (gcc or clang), where RSS figures
 * mean nothing and a test that measures memory skips or loosens. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static int n_pass, n_fail, cur_failed;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "    %s:%d: check failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                      \
      cur_failed = 1;                                                      \
    }                                                                      \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                  \
  do {                                                                      \
    long long a_ = (long long)(a), b_ = (long long)(b);                     \
    if (a_ != b_) {                                                         \
      fprintf(stderr, "    %s:%d: %s == %lld, expected %s == %lld\n",       \
              __FILE__, __LINE__, #a, a_, #b, b_);                          \
      cur_failed = 1;                                                       \
    }                                                                       \
  } while (0)

/* CHECK with a printf-style account of what was seen. */
#define CHECKF(cond, ...)                                                  \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "    %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
      fprintf(stderr, __VA_ARGS__);                                        \
      fprintf(stderr, "\n");                                               \
      cur_failed = 1;                                                      \
    }                                                                      \
  } while (0)

/* Ends one test: "ok N - name" or "not ok N - name". */
static inline void report(const char *name) {
  int n = n_pass + n_fail + 1;

  if (cur_failed) {
    n_fail++;
    printf("not ok %d - %s\n", n, name);
  } else {
    n_pass++;
    printf("ok %d - %s\n", n, name);
  }
  fflush(stdout);
  cur_failed = 0;
}

/* report() with a printf-style name. */
static inline void reportf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void reportf(const char *fmt, ...) {
  char name[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof name, fmt, ap);
  va_end(ap);
  report(name);
}

/* Prints the closing line; returns the exit status. */
static inline int finish(void) {
  printf("%d passed, %d failed\n", n_pass, n_fail);
  return n_fail == 0 ? 0 : 1;
}

#endif
