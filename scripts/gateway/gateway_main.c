/* moonrpc-gateway: server-side discovery (core/include/moonrpc/gateway.h)
 * as a program.
 *
 *   moonrpc-gateway --registry URL [--listen tcp@127.0.0.1:9981]
 *                   [--selector RoundRobin] [--timeout S] [--group G]
 *                   [--retries N] [--failfast] [--http-idle S] [--conns N]
 *                   [--ready-file PATH]
 *
 * One port takes rpcx frames from any client and HTTP (rpcx's X-RPCX-*
 * headers, or POST /Service/Method with JSON), and forwards each request
 * to an instance of its service listed in the registry. The first line on
 * stdout is `gateway listening on ADDRESS (registry URL)`. SIGINT or
 * SIGTERM stops it: the listener closes, forwarded calls in flight are
 * answered, then the gateway, the server and the registry are closed and
 * it exits 0. A second signal closes everything at once. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "moonrpc.h"

#define SHUTDOWN_TIMEOUT_MS 5000

typedef struct app_s {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  mrpc_server_t *srv;     /* NULL once closed */
  mrpc_gateway_t *gw;     /* NULL once closing */
  mrpc_registry_t *reg;   /* NULL once closing */
  int stopping;           /* the first signal came */
  int gw_closing;         /* on_gateway_closed is on its way */
} app_t;

static void close_signals(app_t *app) {
  if (!uv_is_closing((uv_handle_t *)&app->sigint))
    uv_close((uv_handle_t *)&app->sigint, NULL);
  if (!uv_is_closing((uv_handle_t *)&app->sigterm))
    uv_close((uv_handle_t *)&app->sigterm, NULL);
}

/* The last steps, in order: the server (the gateway is gone by now), then
 * the registry. */
static void on_gateway_closed(mrpc_gateway_t *gw, void *udata) {
  app_t *app = udata;
  (void)gw;
  if (app->srv) {
    mrpc_server_close(app->srv, NULL, NULL);
    app->srv = NULL;
  }
  if (app->reg) {
    mrpc_registry_close(app->reg, NULL, NULL);
    app->reg = NULL;
  }
  close_signals(app);
}

static void close_now(app_t *app) {
  if (app->gw) {
    mrpc_gateway_t *gw = app->gw;
    app->gw = NULL;
    app->gw_closing = 1;
    mrpc_gateway_close(gw, on_gateway_closed, app);
  } else if (!app->gw_closing) {
    on_gateway_closed(NULL, app); /* there never was a gateway */
  }
}

static void on_shutdown(mrpc_server_t *s, void *udata) {
  (void)s;
  close_now(udata);
}

/* The first signal shuts down gracefully, a second one closes at once. */
static void on_signal(uv_signal_t *h, int signum) {
  app_t *app = h->data;
  (void)signum;
  if (app->stopping) {
    close_now(app);
    return;
  }
  app->stopping = 1;
  if (mrpc_server_shutdown(app->srv, SHUTDOWN_TIMEOUT_MS, on_shutdown, app) < 0)
    close_now(app);
}

/* --ready-file PATH: removed at start, written with the address once
 * listening (through PATH.tmp and a rename, so a reader never sees a
 * partial file), removed again at exit. Returns 0 or -1 with errno. */
static int write_ready(const char *path, const char *where) {
  char tmp[4096];
  FILE *f;
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return -1;
  if (!(f = fopen(tmp, "w"))) return -1;
  fprintf(f, "%s\n", where);
  if (fclose(f) != 0 || rename(tmp, path) != 0) { remove(tmp); return -1; }
  return 0;
}

static int usage(FILE *to, int status) {
  fprintf(to,
          "usage: moonrpc-gateway --registry URL [options]\n"
          "Forwards rpcx requests and HTTP calls to the instances a registry lists.\n"
          "  -r, --registry URL    etcd://host:port/base, redis://host:port/base or\n"
          "                        moonrpc://host:port/base (required)\n"
          "  -l, --listen ADDRESS  tcp@host:port or unix@/path (default tcp@127.0.0.1:9981)\n"
          "  -s, --selector NAME   RoundRobin (default), RandomSelect, WeightedRoundRobin,\n"
          "                        WeightedICMP or ConsistentHash\n"
          "  -t, --timeout SECS    per call without __ServerTimeout (default 10)\n"
          "  -g, --group NAME      only instances whose metadata has group=NAME\n"
          "      --retries N       Failover: other instances tried after a transport\n"
          "                        failure (default 2)\n"
          "      --failfast        no retry on another instance\n"
          "      --conns N         connections to each instance, calls spread over\n"
          "                        them (an address with several workers; default 1)\n"
          "      --http-idle SECS  an idle HTTP keep-alive connection is closed after\n"
          "                        this long (default 60)\n"
          "      --ready-file PATH the address is written to PATH once listening\n"
          "  -h, --help            show this help\n\n"
          "HTTP on the same port:\n"
          "  curl -d '{\"A\":7,\"B\":8}' http://127.0.0.1:9981/Arith/Mul\n"
          "  curl -H 'X-RPCX-ServicePath: Arith' -H 'X-RPCX-ServiceMethod: Mul' \\\n"
          "       -H 'X-RPCX-SerializeType: 1' -d '{\"A\":7,\"B\":8}' http://127.0.0.1:9981/\n");
  return status;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"registry", required_argument, NULL, 'r'},
      {"selector", required_argument, NULL, 's'},
      {"timeout", required_argument, NULL, 't'},
      {"group", required_argument, NULL, 'g'},
      {"retries", required_argument, NULL, 'R'},
      {"failfast", no_argument, NULL, 'F'},
      {"http-idle", required_argument, NULL, 'I'},
      {"conns", required_argument, NULL, 'C'},
      {"ready-file", required_argument, NULL, 'Y'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *address = "tcp@127.0.0.1:9981", *url = NULL, *network, *ready = NULL;
  char rest[512], where[512], *end;
  mrpc_gateway_opts_t go;
  app_t app;
  double secs;
  long n;
  int ch, r;

  memset(&go, 0, sizeof go);
  while ((ch = getopt_long(argc, argv, "l:r:s:t:g:h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'l': address = optarg; break;
    case 'Y': ready = optarg; break;
    case 'r': url = optarg; break;
    case 's': go.selector = optarg; break;
    case 'g': go.group = optarg; break;
    case 'F': go.failfast = 1; break;
    case 't':
    case 'I':
      secs = strtod(optarg, &end);
      if (end == optarg || *end || !(secs > 0) || secs > 86400) {
        fprintf(stderr, "moonrpc-gateway: bad --%s '%s'\n", ch == 't' ? "timeout" : "http-idle",
                optarg);
        return 2;
      }
      *(ch == 't' ? &go.timeout_ms : &go.http_idle_ms) =
          (uint64_t)(secs * 1000 + 0.5) ? (uint64_t)(secs * 1000 + 0.5) : 1;
      break;
    case 'R':
      n = strtol(optarg, &end, 10);
      if (end == optarg || *end || n < 0 || n > 100) {
        fprintf(stderr, "moonrpc-gateway: bad --retries '%s'\n", optarg);
        return 2;
      }
      if (n == 0) go.failfast = 1;
      else go.retries = (unsigned)n;
      break;
    case 'C':
      n = strtol(optarg, &end, 10);
      if (end == optarg || *end || n < 1 || n > MRPC_GATEWAY_MAX_CONNS) {
        fprintf(stderr, "moonrpc-gateway: bad --conns '%s' (1 to %d)\n", optarg,
                MRPC_GATEWAY_MAX_CONNS);
        return 2;
      }
      go.conns = (unsigned)n;
      break;
    case 'h': return usage(stdout, 0);
    default: return usage(stderr, 2);
    }
  }
  if (optind != argc || !url) return usage(stderr, 2);
  if (mrpc_addr_split(address, &network, rest, sizeof rest) < 0) {
    fprintf(stderr, "moonrpc-gateway: bad address '%s'\n", address);
    return 2;
  }
  if (go.selector && (mrpc_select_mode_from_name(go.selector) < 0 ||
                      strcmp(go.selector, "Closest") == 0 ||
                      strcmp(go.selector, "SelectByUser") == 0)) {
    fprintf(stderr, "moonrpc-gateway: unknown or unsupported selector '%s'\n", go.selector);
    return 2;
  }

  signal(SIGPIPE, SIG_IGN);
  memset(&app, 0, sizeof app);
  if ((r = uv_loop_init(&app.loop)) < 0) {
    fprintf(stderr, "moonrpc-gateway: uv_loop_init: %s\n", uv_strerror(r));
    return 1;
  }
  if ((r = mrpc_registry_open(&app.loop, url, &app.reg)) < 0) {
    fprintf(stderr, "moonrpc-gateway: bad registry URL '%s': %s\n", url, mrpc_strerror(r));
    uv_loop_close(&app.loop);
    return 2;
  }
  uv_signal_init(&app.loop, &app.sigint);
  uv_signal_init(&app.loop, &app.sigterm);
  app.sigint.data = app.sigterm.data = &app;
  if (ready) remove(ready);
  r = mrpc_server_new(&app.loop, NULL, &app.srv);
  if (r == 0) r = mrpc_gateway_new(&app.loop, app.srv, app.reg, &go, &app.gw);
  if (r == 0) r = mrpc_server_listen(app.srv, network, rest);
  if (r == 0) r = mrpc_server_address(app.srv, 0, where, sizeof where);
  if (r == 0) r = uv_signal_start(&app.sigint, on_signal, SIGINT);
  if (r == 0) r = uv_signal_start(&app.sigterm, on_signal, SIGTERM);
  if (r == 0) {
    printf("gateway listening on %s (registry %s)\n", where, url);
    fflush(stdout);
    if (ready && write_ready(ready, where) < 0) perror("moonrpc-gateway: --ready-file");
  } else {
    fprintf(stderr, "moonrpc-gateway: cannot serve on %s: %s (%s)\n", address,
            mrpc_strerror(r), mrpc_err_name(r));
    close_now(&app);
  }
  uv_run(&app.loop, UV_RUN_DEFAULT);
  if (ready) remove(ready);
  if (uv_loop_close(&app.loop) < 0) {
    fprintf(stderr, "moonrpc-gateway: handles left open at exit\n");
    return 1;
  }
  return r == 0 ? 0 : 1;
}
