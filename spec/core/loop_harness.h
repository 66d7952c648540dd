/* loop_harness.h: the loop-driving harness every libuv-based C test shares
 * (the transport tests through transport_harness.h, and the etcd and Redis
 * registry tests directly).
 *
 * It holds one uv_loop_t that the test owns, as a host would, and:
 *
 *   - two harness timers: `watchdog` (unreferenced: it never keeps the loop
 *     alive) that bounds every wait, and `sleeper` for sleep_ms();
 *   - WAITT(cond, ms): runs the loop until `cond` holds; fails the scenario
 *     (file:line, the condition, and whether it timed out or the loop went
 *     idle) if it does not within `ms`, so a wait fails instead of hanging;
 *     WAIT(cond) is WAITT(cond, 3000);
 *   - sleep_ms(ms): runs the loop for `ms` milliseconds;
 *   - drain(): runs the loop until idle (at most 3 s), then uv_walks it to
 *     check that no handle but the harness's own two is left behind;
 *   - harness_start() / harness_finish(): a program's first and last steps
 *     (SIGPIPE ignored, the loop and its timers; then the timers closed, the
 *     loop closed, the last report and the exit status).
 *
 * Everything here is static (one copy per program); functions are static
 * inline so that one a program does not use draws no warning. */
#ifndef MRPC_SPEC_LOOP_HARNESS_H
#define MRPC_SPEC_LOOP_HARNESS_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "check.h"

/* ---- the loop, waits and the watchdog ----------------------------------- */

static uv_loop_t loop;
static uv_timer_t watchdog; /* unreferenced: never keeps the loop alive */
static uv_timer_t sleeper;
static int wd_fired;

static inline void on_watchdog(uv_timer_t *t) {
  wd_fired = 1;
  uv_stop(t->loop);
}

static inline void wait_begin(uint64_t ms) {
  wd_fired = 0;
  uv_timer_start(&watchdog, on_watchdog, ms, 0);
}

/* One loop turn; 0 once waiting longer is pointless (watchdog fired, or
 * nothing is left on the loop that could make the condition true). */
static inline int wait_step(void) {
  if (wd_fired) return 0;
  return uv_run(&loop, UV_RUN_ONCE) != 0 || uv_loop_alive(&loop);
}

static inline void wait_end(int ok, uint64_t ms, const char *what,
                            const char *file, int line) {
  uv_timer_stop(&watchdog);
  if (!ok) {
    if (wd_fired)
      fprintf(stderr, "    %s:%d: timed out (%llu ms) waiting for: %s\n",
              file, line, (unsigned long long)ms, what);
    else
      fprintf(stderr, "    %s:%d: loop went idle waiting for: %s\n", file,
              line, what);
    cur_failed = 1;
  }
}

/* Runs the loop until `cond` holds, or fails the scenario after `ms`. */
#define WAITT(cond, ms)                                                     \
  do {                                                                      \
    uint64_t wait_ms_ = (ms);                                               \
    wait_begin(wait_ms_);                                                   \
    while (!(cond) && wait_step()) {                                        \
    }                                                                       \
    wait_end((cond), wait_ms_, #cond, __FILE__, __LINE__);                  \
  } while (0)

/* Runs the loop until `cond` holds, or fails the scenario after 3 s. */
#define WAIT(cond) WAITT(cond, 3000)

static int slept;
static inline void on_sleep(uv_timer_t *t) {
  (void)t;
  slept = 1;
}

/* Runs the loop for `ms` milliseconds (the watchdog allows 3 s more). */
static inline void sleep_ms(uint64_t ms) {
  slept = 0;
  uv_timer_start(&sleeper, on_sleep, ms, 0);
  WAITT(slept, ms + 3000);
}

/* ---- handle leaks ------------------------------------------------------- */

static inline void count_handle(uv_handle_t *h, void *arg) {
  if (h == (uv_handle_t *)&watchdog || h == (uv_handle_t *)&sleeper) return;
  fprintf(stderr, "    leaked handle: %s (active %d, closing %d)\n",
          uv_handle_type_name(h->type), uv_is_active(h), uv_is_closing(h));
  (*(int *)arg)++;
}

/* Runs the loop until nothing is left to do, then checks that every handle
 * but the harness's own two is gone. */
static inline void drain(void) {
  int n = 0;

  wait_begin(3000);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_timer_stop(&watchdog);
  if (wd_fired) {
    fprintf(stderr, "    loop still busy after 3 s while draining\n");
    cur_failed = 1;
  }
  uv_walk(&loop, count_handle, &n);
  CHECK_EQ_INT(n, 0);
}

/* ---- a program's start and end ------------------------------------------ */

/* Every test program's start: SIGPIPE ignored (as any libuv host must),
 * the loop and its two timers. */
static inline void harness_start(void) {
  signal(SIGPIPE, SIG_IGN);
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  uv_timer_init(&loop, &watchdog);
  uv_unref((uv_handle_t *)&watchdog);
  uv_timer_init(&loop, &sleeper);
}

/* Every test program's end: the loop must close with no handle left.
 * Returns the exit status. */
static inline int harness_finish(void) {
  uv_close((uv_handle_t *)&watchdog, NULL);
  uv_close((uv_handle_t *)&sleeper, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  report("the loop closes: no handle left behind");
  return finish();
}

#endif /* MRPC_SPEC_LOOP_HARNESS_H */
