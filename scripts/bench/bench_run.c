/* bench_run.c: moonrpc-bench's main thread: one run per --size, each with
 * --workers client threads (bench.c), the progress line and Ctrl-C.
 *
 * The main thread has a loop of its own that only waits: for the workers'
 * "ready", "failed" and "done" (one uv_async_t, `wake`), for SIGINT, and
 * for the progress timer. A run starts its workers, says "go" once all of
 * them are connected, so they start measuring together, and ends when all
 * of them are done; their histograms and counters are merged after the
 * threads are joined. Throughput is every measured request over the wall
 * time from the earliest worker's measurement start to the latest's end.
 *
 * Ctrl-C once: every worker stops sending and waits for the replies in
 * flight (and no further run starts); twice: every worker stops now. */
#include <stdarg.h>
#include <unistd.h>

#include "bench.h"

typedef struct main_s {
  const opts_t *o;
  uv_loop_t loop;
  uv_async_t wake;
  uv_signal_t sigint;
  uv_timer_t progress;
  struct sockaddr_storage addr;
  run_t *run; /* the run in progress, or NULL between runs */
  probe_t probe; /* --lua-memory's connection, kept over the runs */
  int tty, interrupted, line_shown;
  uint64_t last_at, last_completed;
} main_t;

void bench_warn(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* One call, so lines from several threads do not interleave. */
  fprintf(stderr, "%s" PROG ": %s\n", isatty(2) ? "\r\033[K" : "", msg);
}

/* Sends the run's current orders (go, stop) to every worker still open. */
static void broadcast(run_t *run) {
  uv_mutex_lock(&run->lock);
  for (int i = 0; i < run->o->workers; i++)
    if (run->workers[i].ctl_open) uv_async_send(&run->workers[i].ctl);
  uv_mutex_unlock(&run->lock);
}

/* Orders every worker to stop now, with `why` for its requests in flight.
 * Only the main thread writes stop_why, and only before the first STOP_NOW,
 * so a worker that has seen STOP_NOW reads a settled pointer. */
static void stop_now(run_t *run, const char *why) {
  if (atomic_load(&run->stop) != STOP_NOW) {
    run->stop_why = why;
    atomic_store(&run->stop, STOP_NOW);
  }
  broadcast(run);
}

/* ---- progress ---- */

static void on_progress(uv_timer_t *t) {
  main_t *m = t->data;
  run_t *run = m->run;
  uint64_t completed = 0, counted = 0, errors = 0, now = uv_hrtime();
  int warming = 0;
  for (int i = 0; i < m->o->workers; i++) {
    pub_t *p = &run->workers[i].pub;
    completed += atomic_load_explicit(&p->completed, memory_order_relaxed);
    counted += atomic_load_explicit(&p->counted, memory_order_relaxed);
    errors += atomic_load_explicit(&p->errors, memory_order_relaxed);
    if (!atomic_load_explicit(&p->measuring, memory_order_relaxed)) warming = 1;
  }
  double dt = (double)(now - m->last_at) / 1e9;
  char size[48] = "", sz[32], mem[96] = "";
  if (m->o->nsizes > 1) snprintf(size, sizeof size, "  size %s", report_size(run->size, sz, sizeof sz));
  /* The memory samples: shown every second, kept once warm-up is over. */
  double rss = m->o->npids > 0 ? rss_sample(m->o) : -1;
  double lua = m->o->lua_memory ? probe_lua_memory(&m->probe, m->o, &m->addr) : -1;
  if (rss >= 0 && !warming) track_add(&run->rss, rss);
  if (lua >= 0 && !warming) track_add(&run->lua, lua);
  if (rss >= 0) snprintf(mem, sizeof mem, "  rss %.0f KiB", rss);
  if (lua >= 0) snprintf(mem + strlen(mem), sizeof mem - strlen(mem), "  lua %.1f KiB", lua);
  fprintf(stderr, "%s[%6.1f s]%s  completed %" PRIu64 "  errors %" PRIu64 "  %.0f req/s%s%s%s",
          m->tty ? "\r" : "", (double)(now - run->t_go) / 1e9, size, counted, errors,
          dt > 0 ? (double)(completed - m->last_completed) / dt : 0.0, mem,
          warming ? "  (warmup)" : "", m->tty ? "\033[K" : "\n");
  m->line_shown = m->tty;
  m->last_at = now;
  m->last_completed = completed;
}

/* ---- the main thread's events ---- */

static void on_wake(uv_async_t *a) {
  main_t *m = a->data;
  run_t *run = m->run;
  if (!run) return;
  if (atomic_load(&run->connect_failed)) {
    stop_now(run, "not connected");
  } else if (!atomic_load(&run->go) && atomic_load(&run->ready) == m->o->workers) {
    run->t_go = m->last_at = uv_hrtime();
    m->last_completed = 0;
    atomic_store(&run->go, 1);
    broadcast(run);
    uv_timer_start(&m->progress, on_progress, 1000, 1000);
  }
}

static void on_sigint(uv_signal_t *s, int signum) {
  main_t *m = s->data;
  run_t *run = m->run;
  m->interrupted = 1; /* no further run */
  if (!run) return;
  if (atomic_load(&run->stop) == STOP_NONE && atomic_load(&run->go)) {
    bench_warn("interrupted; waiting for replies in flight");
    atomic_store(&run->stop, STOP_DRAIN);
    broadcast(run);
  } else {
    stop_now(run, "interrupted");
  }
}

/* ---- one run ---- */

static int build_request(run_t *run) {
  const opts_t *o = run->o;
  mrpc_buf_t *p = &run->payload;
  size_t sz = (size_t)run->size;
  int r = 0;
  if (o->serialize == MRPC_SERIALIZE_MSGPACK) { /* bin8, bin16 or bin32 */
    uint8_t h[5];
    size_t hl;
    if (sz < 256) { h[0] = 0xc4; h[1] = (uint8_t)sz; hl = 2; }
    else if (sz < 65536) { h[0] = 0xc5; h[1] = (uint8_t)(sz >> 8); h[2] = (uint8_t)sz; hl = 3; }
    else { h[0] = 0xc6; for (int i = 0; i < 4; i++) h[1 + i] = (uint8_t)(sz >> (24 - 8 * i)); hl = 5; }
    r = mrpc_buf_append(p, h, hl);
  } else if (o->serialize == MRPC_SERIALIZE_JSON) {
    r = mrpc_buf_append(p, "\"", 1);
  }
  if (r == 0) r = mrpc_buf_reserve(p, sz + 1);
  if (r != 0) return r;
  memset(p->data + p->len, 'x', sz);
  p->len += sz;
  if (o->serialize == MRPC_SERIALIZE_JSON && (r = mrpc_buf_append(p, "\"", 1)) != 0) return r;

  mrpc_frame_t f;
  memset(&f, 0, sizeof f);
  f.serialize = (uint8_t)(o->serialize << 4);
  f.path = o->service;
  f.path_len = strlen(o->service);
  f.method = o->method;
  f.method_len = strlen(o->method);
  f.payload = p->data;
  f.payload_len = p->len;
  return mrpc_frame_encode(&run->req, &f);
}

/* Merges the joined workers' outcomes into *r. */
static void merge(const run_t *run, hist_t *h, result_t *r) {
  uint64_t t0 = 0, t1 = 0;
  memset(r, 0, sizeof *r);
  r->size = run->size;
  for (int i = 0; i < run->o->workers; i++) {
    const worker_t *w = &run->workers[i];
    r->counted += w->counted;
    r->errors += w->errors;
    r->warmup_errors += w->warmup_errors;
    if (!r->first_error[0] && w->first_error[0])
      memcpy(r->first_error, w->first_error, sizeof r->first_error);
    hist_merge(h, &w->hist);
    if (w->t_start == 0) continue; /* never measured (-n smaller than --workers) */
    if (t0 == 0 || w->t_start < t0) t0 = w->t_start;
    if (w->t_end > t1) t1 = w->t_end;
  }
  r->secs = (double)(t1 - t0) / 1e9;
  r->rps = r->secs > 0 ? (double)r->counted / r->secs : 0;
  r->mb_per_s = r->rps * (double)r->size / 1e6;
  const double q[4] = {0.5, 0.9, 0.99, 0.999};
  for (int i = 0; i < 4; i++) r->lat_ms[i] = hist_quantile(h, q[i]) / 1e6;
  r->lat_ms[4] = (double)h->max / 1e6;
  if (atomic_load(&run->cpu_started)) result_cpu(r, &run->cpu0, &run->cpu1);
  r->rss = run->rss;
  r->lua = run->lua;
  r->lua_before = run->lua_before;
}

/* One run with payload `size` on fresh connections. Returns 0 with *r
 * filled, EXIT_CONNECT, or EXIT_ERRORS when memory or threads ran out. */
static int do_run(main_t *m, uint64_t size, result_t *r) {
  const opts_t *o = m->o;
  int rc = 0, nw = o->workers;
  run_t *run = calloc(1, sizeof *run);
  hist_t *h = calloc(1, sizeof *h);
  if (!run || !h) {
    free(run);
    free(h);
    return EXIT_ERRORS;
  }
  run->o = o;
  run->size = size;
  run->addr = m->addr;
  run->wake = &m->wake;
  run->stop_why = "";
  atomic_store(&run->measuring_left, nw);
  uv_mutex_init(&run->lock);
  run->workers = calloc((size_t)nw, sizeof *run->workers);
  if (!run->workers || build_request(run) != 0) rc = EXIT_ERRORS;
  /* Replies echo the request, so let the decoders take at least its size. */
  run->limits.max_frame = (uint32_t)(run->req.len + 65536);
  for (int i = 0; rc == 0 && i < nw; i++)
    if (worker_init(&run->workers[i], run, i) != 0) rc = EXIT_ERRORS;
  run->lua_before = o->lua_memory ? probe_lua_memory(&m->probe, o, &m->addr) : -1;
  if (rc != 0) {
    bench_warn("out of memory");
  } else {
    m->run = run;
    for (int i = 0; i < nw; i++) {
      int e = uv_thread_create(&run->workers[i].thread, worker_main, &run->workers[i]);
      if (e != 0) { /* the threads started so far are still running */
        bench_warn("cannot start a thread: %s", uv_strerror(e));
        exit(EXIT_ERRORS);
      }
    }
    while (atomic_load(&run->done) < nw) uv_run(&m->loop, UV_RUN_ONCE);
    uv_timer_stop(&m->progress);
    if (m->line_shown) fputs("\r\033[K", stderr);
    m->line_shown = 0;
    m->run = NULL;
    for (int i = 0; i < nw; i++) {
      uv_thread_join(&run->workers[i].thread);
      if (run->workers[i].exit_code == EXIT_CONNECT) rc = EXIT_CONNECT;
    }
    /* The last samples, once every reply is in. */
    double rss = o->npids > 0 ? rss_sample(o) : -1, lua;
    if (rss >= 0) track_add(&run->rss, rss);
    if (o->lua_memory && (lua = probe_lua_memory(&m->probe, o, &m->addr)) >= 0) track_add(&run->lua, lua);
    if (rc == 0) merge(run, h, r);
  }
  for (int i = 0; run->workers && i < nw; i++) worker_free(&run->workers[i]);
  uv_mutex_destroy(&run->lock);
  mrpc_buf_free(&run->req);
  mrpc_buf_free(&run->payload);
  free(run->workers);
  free(run);
  free(h);
  return rc;
}

/* Resolves --addr once, for every run (synchronously: no callback). */
static int resolve(main_t *m) {
  const opts_t *o = m->o;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&m->addr;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&m->addr;
  if (o->path || uv_ip4_addr(o->host, o->port, a4) == 0 || uv_ip6_addr(o->host, o->port, a6) == 0)
    return 0;
  uv_getaddrinfo_t gai;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int r = uv_getaddrinfo(&m->loop, &gai, NULL, o->host, NULL, &hints);
  if (r < 0) return r;
  memcpy(&m->addr, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
  uv_freeaddrinfo(gai.addrinfo);
  if (m->addr.ss_family == AF_INET) a4->sin_port = htons((uint16_t)o->port);
  else a6->sin6_port = htons((uint16_t)o->port);
  return 0;
}

int main(int argc, char **argv) {
  /* A server that closes while we write must give EPIPE, not kill us. */
  signal(SIGPIPE, SIG_IGN);
  opts_t *o = calloc(1, sizeof *o);
  main_t *m = calloc(1, sizeof *m);
  if (!o || !m) return EXIT_ERRORS;
  int rc = parse_opts(o, argc, argv);
  if (rc != 0) {
    free(o);
    free(m);
    return rc > 0 ? 0 : EXIT_USAGE;
  }
  result_t *res = calloc((size_t)o->nsizes, sizeof *res);
  if (!res || uv_loop_init(&m->loop) != 0) return EXIT_ERRORS;
  m->o = o;
  m->tty = isatty(2);
  uv_async_init(&m->loop, &m->wake, on_wake);
  uv_signal_init(&m->loop, &m->sigint);
  uv_timer_init(&m->loop, &m->progress);
  m->wake.data = m->sigint.data = m->progress.data = m;
  uv_signal_start(&m->sigint, on_sigint, SIGINT);

  int nres = 0, r = resolve(m);
  if (r < 0) {
    bench_warn("cannot connect to %s: %s (%s)", o->addr, uv_strerror(r), uv_err_name(r));
    rc = EXIT_CONNECT;
  }
  for (int i = 0; rc == 0 && i < o->nsizes && !m->interrupted; i++) {
    rc = do_run(m, o->sizes[i], &res[nres]);
    if (rc == 0 && o->json) report_json(stdout, o, &res[nres]);
    if (rc == 0) nres++;
  }
  if (nres > 0) {
    FILE *text = o->json ? stderr : stdout;
    report_header(text, o);
    for (int i = 0; i < nres; i++) report_row(text, o, &res[i]);
  }
  for (int i = 0; rc == 0 && i < nres; i++)
    if (res[i].errors || res[i].warmup_errors) rc = EXIT_ERRORS;

  probe_close(&m->probe);
  uv_close((uv_handle_t *)&m->wake, NULL);
  uv_close((uv_handle_t *)&m->sigint, NULL);
  uv_close((uv_handle_t *)&m->progress, NULL);
  uv_run(&m->loop, UV_RUN_DEFAULT);
  uv_loop_close(&m->loop);
  free(res);
  free(o);
  free(m);
  return rc;
}
