/* registry_harness.h: what the registry tests share (redis/test_registry_redis.c,
 * test_registry_embedded.c): call records that count every callback (and
 * check that none runs inside the call that started it), registry objects
 * opened, registered into, listed and closed with those checks, and the
 * helper mode a test re-runs itself in to be SIGKILLed while registered.
 *
 * The including program defines REG_TTL (the lease, in seconds, that reg()
 * and the helper use) before including this, and owns `loop` through
 * loop_harness.h. Everything is static, one copy per program. */
#ifndef MRPC_SPEC_REGISTRY_HARNESS_H
#define MRPC_SPEC_REGISTRY_HARNESS_H

#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "moonrpc.h"
#include "check.h"
#include "loop_harness.h"

#ifndef REG_TTL
#error "define REG_TTL before including registry_harness.h"
#endif

/* ---- records ------------------------------------------------------------ */

typedef struct done_s {
  int n, status;
} done_t;

static int in_call; /* set around calls: no callback may run inside */

static inline void on_done(int status, void *ud) {
  done_t *d = ud;
  CHECK(!in_call);
  d->n++;
  d->status = status;
}

#define MAXE 16
typedef struct lst_s {
  int n, status;
  size_t count;
  char addr[MAXE][64], meta[MAXE][64];
} lst_t;

static inline void on_list(int status, const mrpc_reg_entry_t *l, size_t n, void *ud) {
  lst_t *r = ud;
  size_t i;
  CHECK(!in_call);
  r->n++;
  r->status = status;
  r->count = n;
  for (i = 0; i < n && i < MAXE; i++) {
    CHECK(strcmp(l[i].service, "Arith") == 0);
    snprintf(r->addr[i], sizeof r->addr[i], "%s", l[i].addr);
    snprintf(r->meta[i], sizeof r->meta[i], "%s", l[i].meta);
  }
}

static inline const char *meta_of(const lst_t *r, const char *addr) {
  size_t i;
  for (i = 0; i < r->count && i < MAXE; i++)
    if (strcmp(r->addr[i], addr) == 0) return r->meta[i];
  return NULL;
}

/* ---- registry objects ----------------------------------------------------- */

static inline mrpc_registry_t *reg_open(const char *u) {
  mrpc_registry_t *r = NULL;
  CHECK_EQ_INT(mrpc_registry_open(&loop, u, &r), 0);
  return r;
}

static inline void reg_close(mrpc_registry_t *r) {
  done_t d = {0, -1};
  if (!r) return;
  in_call = 1;
  mrpc_registry_close(r, on_done, &d);
  in_call = 0;
  CHECK_EQ_INT(d.n, 0);
  WAIT(d.n > 0);
  CHECK_EQ_INT(d.n, 1);
  CHECK_EQ_INT(d.status, 0);
}

static inline int reg(mrpc_registry_t *r, const char *a, const char *meta) {
  done_t d = {0, -1};
  int rc;
  in_call = 1;
  rc = mrpc_registry_register(r, "Arith", a, meta, REG_TTL, on_done, &d);
  in_call = 0;
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(d.n, 0);
  WAIT(d.n > 0);
  sleep_ms(0);
  CHECK_EQ_INT(d.n, 1);
  return d.status;
}

static inline void list(mrpc_registry_t *r, lst_t *l) {
  int rc;
  memset(l, 0, sizeof *l);
  in_call = 1;
  rc = mrpc_registry_list(r, "Arith", on_list, l);
  in_call = 0;
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(l->n, 0);
  WAIT(l->n > 0);
  CHECK_EQ_INT(l->n, 1);
}

/* ---- the helper: registers, then waits to be killed ----------------------- */

static inline void helper_registered(int status, void *ud) {
  (void)ud;
  printf("%s\n", status == 0 ? "ready" : "failed");
  fflush(stdout);
}

static inline int helper(const char *u) {
  mrpc_registry_t *r;
  uv_loop_init(&loop);
  if (mrpc_registry_open(&loop, u, &r) != 0) return 1;
  mrpc_registry_register(r, "Arith", "tcp@127.0.0.1:9100", "weight=1", REG_TTL,
                         helper_registered, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  return 0;
}

#endif
