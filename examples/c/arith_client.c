/* arith_client.c: calls rpcx's Arith service (examples/c/arith_server.c, or
 * the Go example server) from C, on a libuv loop that this program owns.
 *
 *   example-arith-client tcp@127.0.0.1:PORT
 *
 * The steps run one after the other, each started from the callback of the
 * one before, since nothing here blocks:
 *   1. Arith.Mul {A: 7, B: 8} answers {C: 56};
 *   2. ten Arith.Mul calls, all in flight at once, each reply checked;
 *   3. Arith.Div by zero ends with the remote error "divide by zero";
 *   4. Arith.Nope ends with "rpcx: can't find method Nope".
 * Each result is printed on its own line. Exit status 0 when every answer
 * was the expected one, 1 otherwise, 2 on a usage error. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <msgpack.h>
#include <uv.h>

#include "moonrpc.h"
#include "arith_msgpack.h"

#define CALL_TIMEOUT_MS 5000
#define NCONCURRENT 10

typedef struct app_s app_t;

/* One call in flight: what was asked and what should come back. */
typedef struct pending_s {
  app_t *app;
  const char *method;
  int64_t a, b;
  int64_t want_c;      /* for a normal reply */
  const char *want_err; /* non-NULL: a remote error is expected */
} pending_t;

struct app_s {
  uv_loop_t loop;
  mrpc_client_t *cli;  /* NULL once mrpc_client_close was called */
  int failures;
  int left;            /* replies still awaited in step 2 */
  pending_t calls[NCONCURRENT];
  pending_t one;       /* the single call of steps 1, 3 and 4 */
};

static void step_concurrent(app_t *app);
static void step_div_zero(app_t *app);
static void step_unknown(app_t *app);
static void finish(app_t *app);

/* ---- msgpack ---------------------------------------------------------------- */

/* The packer writes the arguments into this buffer on the stack: {A, B}
 * takes at most 23 bytes. */
typedef struct args_buf_s {
  char data[32];
  size_t len;
} args_buf_t;

static int args_write(void *ud, const char *p, size_t n) {
  args_buf_t *b = ud;
  if (n > sizeof b->data - b->len) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Packs {A: a, B: b}, as Go encodes its Args struct. 0 or -1. */
static int pack_args(args_buf_t *out, int64_t a, int64_t b) {
  msgpack_packer pk;
  out->len = 0;
  msgpack_packer_init(&pk, out, args_write);
  if (msgpack_pack_map(&pk, 2) < 0 || msgpack_pack_str(&pk, 1) < 0 ||
      msgpack_pack_str_body(&pk, "A", 1) < 0 || msgpack_pack_int64(&pk, a) < 0 ||
      msgpack_pack_str(&pk, 1) < 0 || msgpack_pack_str_body(&pk, "B", 1) < 0 ||
      msgpack_pack_int64(&pk, b) < 0)
    return -1;
  return 0;
}

/* Reads C out of a reply {C: int}. 0 or -1. */
static int unpack_c(const char *data, size_t len, int64_t *c) {
  msgpack_unpacked u;
  size_t off = 0;
  uint32_t i;
  int found = -1;
  if (msgpack_bounded((const unsigned char *)data, len) < 0) return -1;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) == MSGPACK_UNPACK_SUCCESS &&
      off == len && u.data.type == MSGPACK_OBJECT_MAP) {
    const msgpack_object_map *m = &u.data.via.map;
    for (i = 0; i < m->size; i++) {
      const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
      if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 1 ||
          k->via.str.ptr[0] != 'C')
        continue;
      if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
        *c = (int64_t)v->via.u64;
        found = 0;
      } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *c = v->via.i64;
        found = 0;
      }
    }
  }
  msgpack_unpacked_destroy(&u);
  return found;
}

/* ---- calls ---------------------------------------------------------------------- */

/* Checks one answer against `p`, prints it, counts a mismatch. */
static void check(pending_t *p, int status, const mrpc_frame_t *reply) {
  app_t *app = p->app;
  const char *err;
  size_t errlen = 0;
  int64_t c = 0;
  char what[128];

  snprintf(what, sizeof what, "Arith.%s %" PRId64 " %s %" PRId64, p->method,
           p->a, strcmp(p->method, "Div") == 0 ? "/" : "*", p->b);
  if (status < 0) {
    printf("%s: FAILED: %s (%s)\n", what, mrpc_strerror(status),
           mrpc_err_name(status));
    app->failures++;
    return;
  }
  err = mrpc_frame_error(reply, &errlen);
  if (p->want_err) {
    if (err && errlen == strlen(p->want_err) &&
        memcmp(err, p->want_err, errlen) == 0) {
      printf("%s: remote error: %.*s (as expected)\n", what, (int)errlen, err);
    } else {
      printf("%s: FAILED: wanted the remote error \"%s\", got %s%.*s\n", what,
             p->want_err, err ? "the error " : "a normal reply",
             err ? (int)errlen : 0, err ? err : "");
      app->failures++;
    }
    return;
  }
  if (err) {
    printf("%s: FAILED: remote error: %.*s\n", what, (int)errlen, err);
    app->failures++;
  } else if (unpack_c(reply->payload, reply->payload_len, &c) < 0) {
    printf("%s: FAILED: the reply is not {C: int}\n", what);
    app->failures++;
  } else if (c != p->want_c) {
    printf("%s = %" PRId64 ": FAILED: wanted %" PRId64 "\n", what, c, p->want_c);
    app->failures++;
  } else {
    printf("%s = %" PRId64 "\n", what, c);
  }
}

/* Sends `p`. On failure prints why and returns the error; `cb` then never
 * runs, so the caller moves on itself. */
static int send_call(pending_t *p, mrpc_call_cb cb) {
  mrpc_call_args_t args;
  args_buf_t buf;
  int r;
  if (pack_args(&buf, p->a, p->b) < 0) return MRPC_EENCODE;
  memset(&args, 0, sizeof args);
  args.service = "Arith";
  args.method = p->method;
  args.payload = buf.data;
  args.payload_len = buf.len;
  args.serialize = MRPC_SERIALIZE_MSGPACK;
  args.timeout_ms = CALL_TIMEOUT_MS;
  r = mrpc_client_call(p->app->cli, &args, cb, p, NULL);
  if (r < 0) {
    printf("Arith.%s: FAILED to send: %s (%s)\n", p->method, mrpc_strerror(r),
           mrpc_err_name(r));
    p->app->failures++;
  }
  return r;
}

static void set_call(pending_t *p, app_t *app, const char *method, int64_t a,
                     int64_t b, int64_t want_c, const char *want_err) {
  p->app = app;
  p->method = method;
  p->a = a;
  p->b = b;
  p->want_c = want_c;
  p->want_err = want_err;
}

/* ---- the steps -------------------------------------------------------------------- */

static void on_first_mul(int status, const mrpc_frame_t *reply, void *ud) {
  pending_t *p = ud;
  check(p, status, reply);
  /* Connecting failed: every later step would fail the same way. */
  if (status < 0 && status != MRPC_ETIMEDOUT) finish(p->app);
  else step_concurrent(p->app);
}

static void step_first_mul(app_t *app) {
  set_call(&app->one, app, "Mul", 7, 8, 56, NULL);
  if (send_call(&app->one, on_first_mul) < 0) finish(app);
}

static void on_concurrent(int status, const mrpc_frame_t *reply, void *ud) {
  pending_t *p = ud;
  app_t *app = p->app;
  check(p, status, reply);
  if (--app->left == 0) step_div_zero(app);
}

static void step_concurrent(app_t *app) {
  size_t pending;
  int i, sent = 0;
  for (i = 0; i < NCONCURRENT; i++) {
    pending_t *p = &app->calls[i];
    set_call(p, app, "Mul", i + 1, 100 + i, (int64_t)(i + 1) * (100 + i), NULL);
    if (send_call(p, on_concurrent) == 0) sent++;
  }
  pending = mrpc_client_pending(app->cli);
  printf("%d Arith.Mul calls in flight at once: %zu pending\n", sent, pending);
  if (sent != NCONCURRENT || pending != NCONCURRENT) app->failures++;
  app->left = sent;
  if (sent == 0) step_div_zero(app);
}

static void on_div_zero(int status, const mrpc_frame_t *reply, void *ud) {
  pending_t *p = ud;
  check(p, status, reply);
  step_unknown(p->app);
}

static void step_div_zero(app_t *app) {
  set_call(&app->one, app, "Div", 1, 0, 0, "divide by zero");
  if (send_call(&app->one, on_div_zero) < 0) step_unknown(app);
}

static void on_unknown(int status, const mrpc_frame_t *reply, void *ud) {
  pending_t *p = ud;
  check(p, status, reply);
  finish(p->app);
}

static void step_unknown(app_t *app) {
  set_call(&app->one, app, "Nope", 1, 2, 0, "rpcx: can't find method Nope");
  if (send_call(&app->one, on_unknown) < 0) finish(app);
}

/* Closes the client; the loop then runs out of handles and uv_run returns.
 * mrpc_client_close is safe inside a call's callback. */
static void finish(app_t *app) {
  if (!app->cli) return;
  mrpc_client_close(app->cli, NULL, NULL);
  app->cli = NULL;
}

int main(int argc, char **argv) {
  app_t app;
  int r;

  if (argc != 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fprintf(argc == 2 ? stdout : stderr,
            "usage: example-arith-client tcp@127.0.0.1:PORT\n");
    return argc == 2 ? 0 : 2;
  }
  memset(&app, 0, sizeof app);
  if ((r = uv_loop_init(&app.loop)) < 0) {
    fprintf(stderr, "arith-client: uv_loop_init: %s\n", uv_strerror(r));
    return 1;
  }
  if ((r = mrpc_client_new(&app.loop, argv[1], NULL, &app.cli)) < 0) {
    fprintf(stderr, "arith-client: bad address '%s': %s\n", argv[1],
            mrpc_strerror(r));
    uv_loop_close(&app.loop);
    return 2;
  }
  step_first_mul(&app);
  uv_run(&app.loop, UV_RUN_DEFAULT);
  if ((r = uv_loop_close(&app.loop)) < 0) {
    fprintf(stderr, "arith-client: uv_loop_close: %s\n", uv_strerror(r));
    return 1;
  }
  printf("%s\n", app.failures ? "FAILED" : "all as expected");
  return app.failures ? 1 : 0;
}
