/* moonrpc-echo: the benchmark's echo server, with its handler in C.
 *
 *   moonrpc-echo [--listen tcp@127.0.0.1:8972]
 *
 * Serves Echo.Echo, which answers every request with its own payload,
 * unchanged, in the request's serialize type: the payload is never decoded,
 * so it works for raw bytes, JSON and msgpack alike, and what is measured is
 * the core (framing, dispatch, writes) and nothing else. The first line on
 * stdout is `listening on ADDRESS`. SIGINT or SIGTERM stops it: calls in
 * flight are answered, then everything is closed and it exits 0. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "moonrpc.h"

#define SHUTDOWN_TIMEOUT_MS 5000

typedef struct app_s {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  mrpc_server_t *srv; /* NULL once mrpc_server_close was called */
  int stopping;
} app_t;

/* The payload goes back as it came; mrpc_req_reply copies it into the
 * connection's output before the request's bytes are reused. */
static void on_echo(mrpc_req_t *req, void *udata) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  mrpc_req_reply(req, f->payload, f->payload_len, NULL, 0);
}

static void close_now(app_t *app) {
  if (!uv_is_closing((uv_handle_t *)&app->sigint))
    uv_close((uv_handle_t *)&app->sigint, NULL);
  if (!uv_is_closing((uv_handle_t *)&app->sigterm))
    uv_close((uv_handle_t *)&app->sigterm, NULL);
  if (app->srv) {
    mrpc_server_t *s = app->srv;
    app->srv = NULL;
    mrpc_server_close(s, NULL, NULL);
  }
}

static void on_shutdown(mrpc_server_t *s, void *udata) { close_now(udata); }

/* The first signal shuts down gracefully, a second one closes at once. */
static void on_signal(uv_signal_t *h, int signum) {
  app_t *app = h->data;
  if (app->stopping) {
    close_now(app);
    return;
  }
  app->stopping = 1;
  /* A failed call never runs its callback, so close here instead. */
  if (mrpc_server_shutdown(app->srv, SHUTDOWN_TIMEOUT_MS, on_shutdown, app) < 0)
    close_now(app);
}

static int usage(FILE *to, int status) {
  fprintf(to,
          "usage: moonrpc-echo [--listen ADDRESS]\n"
          "Serves Echo.Echo, which replies each request's payload unchanged.\n"
          "  -l, --listen ADDRESS  tcp@host:port or unix@/path (default "
          "tcp@127.0.0.1:8972)\n"
          "  -h, --help            show this help\n");
  return status;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *address = "tcp@127.0.0.1:8972", *network;
  char rest[512], where[512];
  app_t app;
  int ch, r;

  while ((ch = getopt_long(argc, argv, "l:h", longopts, NULL)) != -1) {
    if (ch == 'l') address = optarg;
    else if (ch == 'h') return usage(stdout, 0);
    else return usage(stderr, 2);
  }
  if (optind != argc) return usage(stderr, 2);
  if (mrpc_addr_split(address, &network, rest, sizeof rest) < 0) {
    fprintf(stderr, "moonrpc-echo: bad address '%s'\n", address);
    return 2;
  }

  memset(&app, 0, sizeof app);
  if ((r = uv_loop_init(&app.loop)) < 0) {
    fprintf(stderr, "moonrpc-echo: uv_loop_init: %s\n", uv_strerror(r));
    return 1;
  }
  uv_signal_init(&app.loop, &app.sigint);
  uv_signal_init(&app.loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  r = mrpc_server_new(&app.loop, NULL, &app.srv);
  if (r == 0) r = mrpc_server_register(app.srv, "Echo", "Echo", on_echo, NULL);
  if (r == 0) r = mrpc_server_listen(app.srv, network, rest);
  if (r == 0) r = mrpc_server_address(app.srv, 0, where, sizeof where);
  if (r == 0) r = uv_signal_start(&app.sigint, on_signal, SIGINT);
  if (r == 0) r = uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  if (r == 0) {
    printf("listening on %s\n", where);
    fflush(stdout);
  } else {
    fprintf(stderr, "moonrpc-echo: cannot serve on %s: %s (%s)\n", address,
            mrpc_strerror(r), mrpc_err_name(r));
    close_now(&app);
  }
  uv_run(&app.loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&app.loop) < 0) {
    fprintf(stderr, "moonrpc-echo: handles left open at exit\n");
    return 1;
  }
  return r == 0 ? 0 : 1;
}
