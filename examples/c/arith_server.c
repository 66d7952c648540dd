/* arith_server.c: rpcx's Arith example service, in C alone, on a libuv loop
 * that this program owns.
 *
 *   example-arith-server [ADDRESS]     (default tcp@127.0.0.1:0)
 *
 * Arith.Mul and Arith.Div take a msgpack map {A: int, B: int}, as Go's
 * `type Args struct { A, B int }` encodes it, and answer {C: int}. Div by
 * zero answers the remote error "divide by zero". The first line on stdout
 * is `listening on tcp@127.0.0.1:PORT`, so a script can start the server on
 * port 0 and read the port back. SIGINT or SIGTERM stops it gracefully:
 * calls in flight finish, then the server and the loop are closed and the
 * program exits 0 with nothing left allocated. A second signal during the
 * shutdown closes at once.
 *
 * Payloads are decoded with msgpack-c and replies packed with its packer
 * writing into a buffer on the stack. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <msgpack.h>
#include <uv.h>

#include "moonrpc.h"
#include "arith_msgpack.h"

/* Arith's arguments are two integers: about 20 bytes of msgpack. Anything
 * much larger is not an honest Args. */
#define ARGS_MAX_BYTES 256
#define ARGS_MAX_PAIRS 8
#define SHUTDOWN_TIMEOUT_MS 5000

typedef struct app_s {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  mrpc_server_t *srv;  /* NULL once mrpc_server_close was called */
  int stopping;        /* a graceful shutdown has begun */
} app_t;

/* One method of the service: computes *c or sets *err and returns -1. */
typedef int (*arith_fn)(int64_t a, int64_t b, int64_t *c, const char **err);
typedef struct op_s {
  const char *method;
  arith_fn fn;
} op_t;

/* ---- the service ------------------------------------------------------- */

static int mul(int64_t a, int64_t b, int64_t *c, const char **err) {
  if (__builtin_mul_overflow(a, b, c)) {
    *err = "integer overflow";
    return -1;
  }
  return 0;
}

static int divide(int64_t a, int64_t b, int64_t *c, const char **err) {
  if (b == 0) {
    *err = "divide by zero";
    return -1;
  }
  if (a == INT64_MIN && b == -1) {
    *err = "integer overflow";
    return -1;
  }
  *c = a / b;
  return 0;
}

static const op_t ops[] = {{"Mul", mul}, {"Div", divide}};

/* Reads a msgpack integer that fits in int64. 0 or -1. */
static int get_int(const msgpack_object *o, int64_t *v) {
  if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    *v = (int64_t)o->via.u64;
    return 0;
  }
  if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *v = o->via.i64;
    return 0;
  }
  return -1;
}

/* Decodes {A: int, B: int}. Unknown keys are ignored and missing ones are
 * zero, as Go's decoder does. Returns NULL or an error message. */
static const char *decode_args(const char *data, size_t len, int64_t *a,
                               int64_t *b) {
  msgpack_unpacked u;
  const msgpack_object_map *m;
  const char *err = NULL;
  size_t off = 0;
  uint32_t i;
  *a = *b = 0;
  if (len > ARGS_MAX_BYTES) return "arith: arguments too large";
  if (msgpack_bounded((const unsigned char *)data, len) < 0)
    return "arith: arguments are not one msgpack value";
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
      off != len) {
    err = "arith: arguments are not one msgpack value";
  } else if (u.data.type != MSGPACK_OBJECT_MAP ||
             u.data.via.map.size > ARGS_MAX_PAIRS) {
    err = "arith: arguments must be a map {A: int, B: int}";
  } else {
    m = &u.data.via.map;
    for (i = 0; i < m->size && !err; i++) {
      const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
      int64_t *dst;
      if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != 1) continue;
      if (k->via.str.ptr[0] == 'A') dst = a;
      else if (k->via.str.ptr[0] == 'B') dst = b;
      else continue;
      if (get_int(v, dst) < 0) err = "arith: A and B must be integers";
    }
  }
  msgpack_unpacked_destroy(&u);
  return err;
}

/* The packer writes into this fixed buffer: {C: int64} needs 12 bytes. */
typedef struct reply_buf_s {
  char data[32];
  size_t len;
} reply_buf_t;

static int reply_write(void *ud, const char *p, size_t n) {
  reply_buf_t *b = ud;
  if (n > sizeof b->data - b->len) return -1;
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* The handler of every method; `udata` is its entry in ops[]. */
static void on_arith(mrpc_req_t *req, void *udata) {
  const op_t *op = udata;
  const mrpc_frame_t *f = mrpc_req_frame(req);
  const char *err = NULL;
  int64_t a, b, c = 0;
  reply_buf_t out = {{0}, 0};
  msgpack_packer pk;

  if (mrpc_req_serialize(req) != MRPC_SERIALIZE_MSGPACK) {
    mrpc_req_error(req, "arith: this example speaks msgpack only", NULL, 0,
                   NULL, 0);
    return;
  }
  if ((err = decode_args(f->payload, f->payload_len, &a, &b)) != NULL ||
      op->fn(a, b, &c, &err) < 0) {
    mrpc_req_error(req, err, NULL, 0, NULL, 0);
    return;
  }
  msgpack_packer_init(&pk, &out, reply_write);
  if (msgpack_pack_map(&pk, 1) < 0 || msgpack_pack_str(&pk, 1) < 0 ||
      msgpack_pack_str_body(&pk, "C", 1) < 0 || msgpack_pack_int64(&pk, c) < 0) {
    mrpc_req_error(req, "arith: cannot encode the reply", NULL, 0, NULL, 0);
    return;
  }
  mrpc_req_reply(req, out.data, out.len, NULL, 0);
}

/* ---- start and stop -------------------------------------------------------- */

static void close_now(app_t *app) {
  if (!uv_is_closing((uv_handle_t *)&app->sigint))
    uv_close((uv_handle_t *)&app->sigint, NULL);
  if (!uv_is_closing((uv_handle_t *)&app->sigterm))
    uv_close((uv_handle_t *)&app->sigterm, NULL);
  if (app->srv) {
    mrpc_server_t *s = app->srv;
    app->srv = NULL; /* freed by the loop: never touch it again */
    mrpc_server_close(s, NULL, NULL);
  }
}

/* May run from inside mrpc_server_shutdown when nothing is in flight. */
static void on_shutdown(mrpc_server_t *s, void *udata) { close_now(udata); }

static void on_signal(uv_signal_t *h, int signum) {
  app_t *app = h->data;
  int r;
  if (app->stopping) {
    fprintf(stderr, "arith-server: signal %d again, closing now\n", signum);
    close_now(app);
    return;
  }
  app->stopping = 1;
  fprintf(stderr, "arith-server: signal %d, shutting down\n", signum);
  r = mrpc_server_shutdown(app->srv, SHUTDOWN_TIMEOUT_MS, on_shutdown, app);
  if (r < 0) close_now(app); /* a failed call never runs its callback */
}

static int start(app_t *app, const char *address) {
  const char *network;
  char rest[512], where[512];
  size_t i;
  int r;
  if ((r = mrpc_addr_split(address, &network, rest, sizeof rest)) < 0) {
    fprintf(stderr, "arith-server: bad address '%s': %s\n", address,
            mrpc_strerror(r));
    return r;
  }
  r = mrpc_server_new(&app->loop, NULL, &app->srv);
  for (i = 0; r == 0 && i < sizeof ops / sizeof ops[0]; i++)
    r = mrpc_server_register(app->srv, "Arith", ops[i].method, on_arith,
                             (void *)&ops[i]);
  if (r < 0 || (r = mrpc_server_listen(app->srv, network, rest)) < 0 ||
      (r = mrpc_server_address(app->srv, 0, where, sizeof where)) < 0) {
    fprintf(stderr, "arith-server: cannot serve on %s: %s (%s)\n", address,
            mrpc_strerror(r), mrpc_err_name(r));
    return r;
  }
  if ((r = uv_signal_start(&app->sigint, on_signal, SIGINT)) < 0 ||
      (r = uv_signal_start(&app->sigterm, on_signal, SIGTERM)) < 0) {
    fprintf(stderr, "arith-server: cannot watch signals: %s\n", uv_strerror(r));
    return r;
  }
  printf("listening on %s\n", where);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  app_t app;
  const char *address = argc > 1 ? argv[1] : "tcp@127.0.0.1:0";
  int r, failed;

  if (argc > 2 || (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
                                 strcmp(argv[1], "--help") == 0))) {
    fprintf(argc > 2 ? stderr : stdout,
            "usage: example-arith-server [tcp@127.0.0.1:0]\n");
    return argc > 2 ? 2 : 0;
  }
  memset(&app, 0, sizeof app);
  if ((r = uv_loop_init(&app.loop)) < 0) {
    fprintf(stderr, "arith-server: uv_loop_init: %s\n", uv_strerror(r));
    return 1;
  }
  uv_signal_init(&app.loop, &app.sigint);
  uv_signal_init(&app.loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;

  failed = start(&app, address) < 0;
  if (failed) close_now(&app); /* the loop then only runs the closes */
  uv_run(&app.loop, UV_RUN_DEFAULT);
  if ((r = uv_loop_close(&app.loop)) < 0) {
    fprintf(stderr, "arith-server: uv_loop_close: %s\n", uv_strerror(r));
    return 1;
  }
  if (!failed) fprintf(stderr, "arith-server: stopped\n");
  return failed ? 1 : 0;
}
