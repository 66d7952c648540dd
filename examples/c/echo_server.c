/* moonrpc-echo: the benchmark's echo server, with its handler in C, and the
 * example of a host that runs libmoonrpc on several loops.
 *
 *   moonrpc-echo [--listen tcp@127.0.0.1:8972] [--workers N|auto]
 *                [--ready-file PATH]
 *
 * Serves Echo.Echo, which answers every request with its own payload,
 * unchanged, in the request's serialize type: the payload is never decoded,
 * so it works for raw bytes, JSON and msgpack alike, and what is measured is
 * the core (framing, dispatch, writes) and nothing else.
 *
 * With --workers N the host runs N threads, each with its own uv_loop_t and
 * its own mrpc_server_t, all listening on one address with opts.reuseport
 * (SO_REUSEPORT): the kernel spreads new connections over the loops. The
 * core keeps no global state, so each loop's objects are used from its own
 * thread only; the threads share nothing but the address. Worker 0 listens
 * first (port 0 picks a port), the others then listen on the address it
 * got. The main thread runs worker 0's loop and watches SIGINT/SIGTERM; a
 * signal shuts its server down and wakes every other loop with uv_async_send
 * (the one libuv call that is safe from another thread) to do the same.
 *
 * The first line on stdout is `listening on ADDRESS`. SIGINT or SIGTERM
 * stops it: calls in flight are answered, then everything is closed and it
 * exits 0; a second signal closes at once. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "moonrpc.h"

#define SHUTDOWN_TIMEOUT_MS 5000
#define MAX_WORKERS 256

typedef struct worker_s {
  uv_loop_t loop;
  uv_async_t wake;     /* other threads ask this loop to stop through it */
  mrpc_server_t *srv;  /* NULL once mrpc_server_close was called */
  uv_thread_t thread;  /* not used for worker 0, which is the main thread */
  int now;             /* a second signal: close at once (set by the main
                          thread before it wakes this loop; atomic) */
  struct app_s *app;
  int inited;          /* its loop and handles exist */
} worker_t;

typedef struct app_s {
  worker_t w[MAX_WORKERS];
  int n;
  uv_signal_t sigs[2]; /* SIGINT and SIGTERM, on worker 0's loop; closed once
                          every worker is done, so a second signal during
                          the drain still reaches us */
  uv_async_t done;     /* on worker 0's loop: another worker has finished */
  int finished;        /* workers 1.. whose loop has ended (atomic) */
  int threads;         /* workers 1.. running in threads */
  int signals;
} app_t;

/* The payload goes back as it came; mrpc_req_reply copies it into the
 * connection's output before the request's bytes are reused. */
static void on_echo(mrpc_req_t *req, void *udata) {
  const mrpc_frame_t *f = mrpc_req_frame(req);
  mrpc_req_reply(req, f->payload, f->payload_len, NULL, 0);
}

/* Closes what worker `w` still has open, on its own loop's thread. */
/* On worker 0's loop: once worker 0 is closed and every other worker has
 * finished, the signal watches and the done handle go, and the loop ends. */
static void maybe_close_main(app_t *app) {
  int i;
  if (app->w[0].srv || __atomic_load_n(&app->finished, __ATOMIC_ACQUIRE) < app->threads) return;
  for (i = 0; i < 2; i++)
    if (!uv_is_closing((uv_handle_t *)&app->sigs[i])) uv_close((uv_handle_t *)&app->sigs[i], NULL);
  if (!uv_is_closing((uv_handle_t *)&app->done)) uv_close((uv_handle_t *)&app->done, NULL);
}

static void on_done(uv_async_t *a) { maybe_close_main(a->data); }

static void close_now(worker_t *w) {
  if (!uv_is_closing((uv_handle_t *)&w->wake)) uv_close((uv_handle_t *)&w->wake, NULL);
  if (w->srv) {
    mrpc_server_t *s = w->srv;
    w->srv = NULL;
    mrpc_server_close(s, NULL, NULL);
  }
  if (w == &w->app->w[0]) maybe_close_main(w->app);
}

static void on_shutdown(mrpc_server_t *s, void *udata) { close_now(udata); }

/* On w's thread: a graceful shutdown, or a close when asked twice. A failed
 * shutdown never runs its callback, so close here instead. */
static void stop_worker(worker_t *w) {
  if (__atomic_load_n(&w->now, __ATOMIC_ACQUIRE) || !w->srv || mrpc_server_shutdown(w->srv, SHUTDOWN_TIMEOUT_MS, on_shutdown, w) < 0)
    close_now(w);
}

static void on_wake(uv_async_t *a) { stop_worker(a->data); }

static void on_signal(uv_signal_t *h, int signum) {
  app_t *app = h->data;
  int i;
  app->signals++;
  for (i = 0; i < app->n; i++) __atomic_store_n(&app->w[i].now, app->signals > 1, __ATOMIC_RELEASE);
  stop_worker(&app->w[0]);
  for (i = 1; i < app->n; i++) uv_async_send(&app->w[i].wake);
}

static void run_worker(void *arg) {
  worker_t *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  __atomic_add_fetch(&w->app->finished, 1, __ATOMIC_RELEASE);
  uv_async_send(&w->app->done);
}

/* Sets up worker `w` on its loop, listening on network/address. */
static int start_worker(worker_t *w, int reuseport, const char *network, const char *address) {
  mrpc_server_opts_t o;
  int r;
  memset(&o, 0, sizeof o);
  o.reuseport = reuseport;
  if ((r = uv_loop_init(&w->loop)) < 0) return r;
  w->inited = 1;
  uv_async_init(&w->loop, &w->wake, on_wake);
  w->wake.data = w;
  if (w == &w->app->w[0]) { /* the main loop's own handles, started later */
    int i;
    for (i = 0; i < 2; i++) {
      uv_signal_init(&w->loop, &w->app->sigs[i]);
      w->app->sigs[i].data = w->app;
    }
    uv_async_init(&w->loop, &w->app->done, on_done);
    w->app->done.data = w->app;
  }
  r = mrpc_server_new(&w->loop, &o, &w->srv);
  if (r == 0) r = mrpc_server_register(w->srv, "Echo", "Echo", on_echo, NULL);
  if (r == 0) r = mrpc_server_listen(w->srv, network, address);
  return r;
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
          "usage: moonrpc echo [--listen ADDRESS] [--workers N|auto]\n"
          "Serves Echo.Echo, which replies each request's payload unchanged.\n"
          "  -l, --listen ADDRESS  tcp@host:port or unix@/path (default "
          "tcp@127.0.0.1:8972)\n"
          "  -w, --workers N       N loops in N threads on the one TCP address\n"
          "                        (SO_REUSEPORT); auto: one per CPU (default 1)\n"
          "      --ready-file PATH the address is written to PATH once listening\n"
          "  -h, --help            show this help\n");
  return status;
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"listen", required_argument, NULL, 'l'},
      {"workers", required_argument, NULL, 'w'},
      {"ready-file", required_argument, NULL, 'Y'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *address = "tcp@127.0.0.1:8972", *network, *ready = NULL;
  char rest[512], where[512];
  static app_t app;
  int ch, r, i, started = 1, threads = 1, failed = 0;
  char *end;

  app.n = 1;
  while ((ch = getopt_long(argc, argv, "l:w:h", longopts, NULL)) != -1) {
    if (ch == 'l') address = optarg;
    else if (ch == 'Y') ready = optarg;
    else if (ch == 'w' && strcmp(optarg, "auto") == 0) app.n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    else if (ch == 'w') {
      long v = strtol(optarg, &end, 10);
      if (*end || v < 1 || v > MAX_WORKERS) return usage(stderr, 2);
      app.n = (int)v;
    } else if (ch == 'h') return usage(stdout, 0);
    else return usage(stderr, 2);
  }
  if (app.n < 1) app.n = 1;
  if (app.n > MAX_WORKERS) app.n = MAX_WORKERS;
  if (optind != argc) return usage(stderr, 2);
  if (mrpc_addr_split(address, &network, rest, sizeof rest) < 0) {
    fprintf(stderr, "moonrpc-echo: bad address '%s'\n", address);
    return 2;
  }
  if (app.n > 1 && strcmp(network, "tcp") != 0) {
    fprintf(stderr, "moonrpc-echo: --workers needs a tcp address\n");
    return 2;
  }

  if (ready) remove(ready);
  for (i = 0; i < app.n; i++) app.w[i].app = &app;
  r = start_worker(&app.w[0], app.n > 1, network, rest);
  if (!app.w[0].inited) {
    fprintf(stderr, "moonrpc-echo: uv_loop_init: %s\n", uv_strerror(r));
    return 1;
  }
  if (r == 0) r = mrpc_server_address(app.w[0].srv, 0, where, sizeof where);
  /* The others listen on the port worker 0 got. */
  if (r == 0) r = mrpc_addr_split(where, &network, rest, sizeof rest);
  for (i = 1; r == 0 && i < app.n; i++, started++) {
    if ((r = start_worker(&app.w[i], 1, network, rest)) < 0) {
      if (app.w[i].inited) {
        close_now(&app.w[i]);
        uv_run(&app.w[i].loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.w[i].loop);
      }
      break;
    }
  }
  if (r == 0) {
    for (; r == 0 && threads < started; threads++)
      if ((r = uv_thread_create(&app.w[threads].thread, run_worker, &app.w[threads])) < 0) break;
  }
  app.threads = threads - 1; /* before anything can close worker 0 */
  if (r == 0)
    for (i = 0; i < 2; i++) uv_signal_start(&app.sigs[i], on_signal, i == 0 ? SIGINT : SIGTERM);
  if (r == 0) {
    printf("listening on %s", where);
    if (app.n > 1) printf(" (%d workers)", app.n);
    printf("\n");
    fflush(stdout);
    if (ready && write_ready(ready, where) < 0) perror("moonrpc-echo: --ready-file");
  } else {
    fprintf(stderr, "moonrpc-echo: cannot serve on %s: %s (%s)\n", address,
            mrpc_strerror(r), mrpc_err_name(r));
    for (i = 1; i < threads; i++) uv_async_send(&app.w[i].wake); /* running: stop */
    for (i = threads; i < started; i++) { /* never ran: close here */
      close_now(&app.w[i]);
      uv_run(&app.w[i].loop, UV_RUN_DEFAULT);
    }
    close_now(&app.w[0]);
  }
  uv_run(&app.w[0].loop, UV_RUN_DEFAULT);
  for (i = 1; i < threads; i++) uv_thread_join(&app.w[i].thread);
  if (ready) remove(ready);
  for (i = 0; i < started; i++) {
    if (uv_loop_close(&app.w[i].loop) < 0) {
      fprintf(stderr, "moonrpc-echo: handles left open at exit (worker %d)\n", i);
      failed = 1;
    }
  }
  return r == 0 && !failed ? 0 : 1;
}
