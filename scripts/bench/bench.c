/* bench.c: one worker of moonrpc-bench: its loop, callers and connections.
 *
 * `moonrpc bench` execs moonrpc-bench, a closed-loop benchmark client for
 * any rpcx server. It drives an Echo service (rpcx's own benchmark service,
 * or ours) with C callers: each caller keeps exactly one request in flight
 * and sends the next one when its reply arrives. A worker is one thread with
 * its own libuv loop and its share of the callers and connections
 * (bench_run.c starts them); within a worker, callers are spread
 * round-robin over the connections, so many callers share one socket, as in
 * rpcx's Go benchmark. Because the server echoes the payload unchanged,
 * every reply can be checked byte for byte.
 *
 * What bounds throughput on loopback is system calls per request (see
 * REFERENCE.md), so the hot path makes at most one read and one write per
 * connection per loop iteration: the request frame is encoded once and
 * copied with its seq patched, replies are decoded in place from the read
 * buffer, and everything queued during one callback goes out in one write.
 * Nothing on the hot path touches memory shared with other threads: the
 * progress counters are published every 100 ms from the tick timer.
 *
 * Exit status: 0 no errors, 1 some request failed, 2 usage error, 3 could
 * not connect. */

#include "bench.h"

/* ---- run control ---- */

static void conn_flush(conn_t *c);
static void conn_close(conn_t *c, const char *why, uint64_t now);

static void note_error(worker_t *w, const char *msg, size_t len) {
  if (w->measuring) w->errors++;
  else w->warmup_errors++;
  if (w->first_error[0]) return;
  if (len >= sizeof w->first_error) len = sizeof w->first_error - 1;
  memcpy(w->first_error, msg, len);
  w->first_error[len] = '\0';
  if (atomic_exchange(&w->run->error_shown, 1) == 0) bench_warn("first error: %s", w->first_error);
}

static int can_issue(const worker_t *w) {
  return w->started && !w->stopping && !w->finished && w->nalive > 0 &&
         (w->o->duration > 0 || w->issued < w->budget);
}

/* Copies this worker's counters where the main thread's progress line reads
 * them. Relaxed: the line needs no ordering, only untorn values. */
static void publish(worker_t *w) {
  atomic_store_explicit(&w->pub.completed, w->completed, memory_order_relaxed);
  atomic_store_explicit(&w->pub.counted, w->counted, memory_order_relaxed);
  atomic_store_explicit(&w->pub.errors, w->errors, memory_order_relaxed);
  atomic_store_explicit(&w->pub.measuring, w->measuring, memory_order_relaxed);
}

static void on_duration(uv_timer_t *t);

/* The first worker to start measuring takes the "before" CPU sample. */
static void start_measuring(worker_t *w, uint64_t now) {
  run_t *run = w->run;
  w->measuring = 1;
  w->t_start = w->t_end = now;
  if (atomic_exchange(&run->cpu_started, 1) == 0) cpu_sample(w->o, &run->cpu0);
  if (w->o->duration > 0)
    uv_timer_start(&w->limit, on_duration, (uint64_t)(w->o->duration * 1e3), 0);
}

/* Queues the caller's next request into its connection's fill buffer; the
 * write happens when the current callback flushes. */
static void caller_send(caller_t *k, uint64_t now) {
  conn_t *c = k->conn;
  worker_t *w = c->w;
  const mrpc_buf_t *req = &w->run->req;
  mrpc_buf_t *o = &c->out[c->fill];
  size_t at = o->len;
  if (mrpc_buf_append(o, req->data, req->len) != 0) {
    conn_close(c, "out of memory", now);
    return;
  }
  k->seq = (uint64_t)++k->round << 32 | k->local;
  for (int i = 0; i < 8; i++) o->data[at + 4 + i] = (char)(k->seq >> (56 - 8 * i));
  k->sent_at = now;
  k->in_flight = 1;
  w->inflight++;
  w->issued++;
}

/* Ends the caller's current request, with `err` NULL on success. The first
 * `warmup` completions only start the measurement. Sends the next request
 * when the run goes on. */
static void caller_done(caller_t *k, const char *err, size_t err_len, uint64_t now) {
  worker_t *w = k->conn->w;
  k->in_flight = 0;
  w->inflight--;
  w->completed++;
  if (err) note_error(w, err, err_len);
  if (!w->measuring) {
    if (w->completed >= w->warmup) start_measuring(w, now);
  } else {
    w->counted++;
    w->t_end = now;
    if (!err) hist_add(&w->hist, now - k->sent_at);
  }
  if (k->conn->alive && can_issue(w)) caller_send(k, now);
}

/* Stops this worker: closes its timers, its control handle and every
 * connection (requests still in flight count as errors with `why`). uv_run
 * returns once the close callbacks have run. The last worker of the run to
 * get here takes the "after" CPU sample. */
static void finish(worker_t *w, const char *why) {
  run_t *run = w->run;
  if (w->finished) return;
  w->finished = 1;
  uint64_t now = uv_hrtime();
  for (uint64_t i = 0; i < w->nconns; i++) conn_close(&w->conns[i], why, now);
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_close((uv_handle_t *)&w->limit, NULL);
  /* Under the lock, so the main thread never sends to a closed handle. */
  uv_mutex_lock(&run->lock);
  w->ctl_open = 0;
  uv_close((uv_handle_t *)&w->ctl, NULL);
  uv_mutex_unlock(&run->lock);
  if (atomic_fetch_sub(&run->measuring_left, 1) == 1) cpu_sample(w->o, &run->cpu1);
}

static void maybe_done(worker_t *w) {
  if (!w->finished && w->started && w->inflight == 0 && !can_issue(w))
    finish(w, "run ended");
}

static void on_hard_limit(uv_timer_t *t) {
  finish(t->data, "global timeout: no reply before the run's deadline");
}

static void on_duration(uv_timer_t *t) {
  worker_t *w = t->data;
  w->stopping = 1;
  uv_timer_start(&w->limit, on_hard_limit, (uint64_t)((w->o->timeout + 5) * 1e3), 0);
  maybe_done(w);
}

/* ---- connections ---- */

/* Closes the connection once; its requests in flight count as errors. The
 * memory stays in w->conns until the worker is freed. */
static void conn_close(conn_t *c, const char *why, uint64_t now) {
  worker_t *w = c->w;
  if (c->closing || !c->inited) return;
  c->closing = 1;
  if (c->alive) w->nalive--;
  c->alive = 0;
  for (uint32_t j = 0; j < c->ncallers; j++) {
    caller_t *k = &w->callers[(uint64_t)j * w->nconns + c->index];
    if (k->in_flight) caller_done(k, why, strlen(why), now);
  }
  uv_close(&c->h.handle, NULL);
}

static void conn_fail(conn_t *c, const char *what, int err, uint64_t now) {
  char msg[256];
  snprintf(msg, sizeof msg, "connection %d.%u lost (%s): %s (%s)", c->w->index, c->index, what,
           err < -30000 ? mrpc_strerror(err) : uv_strerror(err),
           err < -30000 ? mrpc_err_name(err) : uv_err_name(err));
  if (!c->closing && !c->w->finished) bench_warn("%s", msg);
  conn_close(c, msg, now);
}

static void on_write(uv_write_t *req, int status) {
  conn_t *c = req->data;
  c->writing = 0;
  c->out[c->fill ^ 1].len = 0;
  if (c->closing) return;
  if (status < 0) {
    conn_fail(c, "write", status, uv_hrtime());
    maybe_done(c->w);
    return;
  }
  conn_flush(c); /* what accumulated while this write was in flight */
}

/* Sends everything in the fill buffer: uv_try_write first, and a uv_write
 * for any remainder, after which the other buffer becomes the fill buffer. */
static void conn_flush(conn_t *c) {
  mrpc_buf_t *o = &c->out[c->fill];
  if (c->writing || !c->alive || o->len == 0) return;
  uv_buf_t buf = uv_buf_init(o->data, (unsigned)o->len);
  int n = uv_try_write(&c->h.stream, &buf, 1);
  if (n == UV_EAGAIN) n = 0;
  if (n < 0) {
    conn_fail(c, "write", n, uv_hrtime());
    return;
  }
  if ((size_t)n == o->len) {
    o->len = 0;
    return;
  }
  buf = uv_buf_init(o->data + n, (unsigned)(o->len - (size_t)n));
  int r = uv_write(&c->write_req, &c->h.stream, &buf, 1, on_write);
  if (r < 0) {
    conn_fail(c, "write", r, uv_hrtime());
    return;
  }
  c->writing = 1;
  c->fill ^= 1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  char *p;
  size_t n;
  if (mrpc_decoder_reserve(&c->dec, suggested, &p, &n) != 0) {
    *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init(p, (unsigned)n);
}

/* Checks one reply and ends its caller's request. Replies that match no
 * request in flight (late answers to timed-out requests, server pushes) are
 * ignored. */
static void handle_reply(conn_t *c, const mrpc_frame_t *f, uint64_t now) {
  worker_t *w = c->w;
  const mrpc_buf_t *want = &w->run->payload;
  uint32_t local = (uint32_t)f->seq;
  if (local >= c->ncallers) return;
  caller_t *k = &w->callers[(uint64_t)local * w->nconns + c->index];
  if (!k->in_flight || k->seq != f->seq) return;
  if (!mrpc_frame_is_response(f)) {
    caller_done(k, "reply without the response bit", 30, now);
  } else if (mrpc_frame_status(f) != MRPC_STATUS_NORMAL) {
    const mrpc_meta_t *m = mrpc_frame_meta_get(f, MRPC_META_ERROR);
    if (m) caller_done(k, m->val, m->val_len, now);
    else caller_done(k, "error status without __rpcx_error__", 35, now);
  } else if (f->payload_len != want->len || memcmp(f->payload, want->data, want->len) != 0) {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "reply payload differs from the request (%zu bytes, sent %zu)",
                     f->payload_len, want->len);
    caller_done(k, msg, (size_t)n, now);
  } else {
    caller_done(k, NULL, 0, now);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;
  uint64_t now = uv_hrtime();
  if (nread < 0) {
    conn_fail(c, nread == UV_EOF ? "closed by the server" : "read", (int)nread, now);
  } else if (nread > 0) {
    mrpc_frame_t f;
    int r = 0;
    mrpc_decoder_commit(&c->dec, (size_t)nread);
    c->last_read = now;
    while (!c->closing && (r = mrpc_decoder_next(&c->dec, &f)) == 1) handle_reply(c, &f, now);
    if (!c->closing && r < 0) conn_fail(c, "bad frame", r, now);
    conn_flush(c);
  }
  maybe_done(c->w);
}

/* Called on "go": every worker of the run is connected. */
static void start_run(worker_t *w) {
  uint64_t now = uv_hrtime();
  uv_timer_stop(&w->limit);
  w->started = 1;
  for (uint64_t i = 0; i < w->nconns; i++) w->conns[i].last_read = now;
  if (w->warmup == 0 && w->budget > 0) start_measuring(w, now);
  for (uint64_t i = 0; i < w->concurrency && can_issue(w); i++)
    caller_send(&w->callers[i], now);
  for (uint64_t i = 0; i < w->nconns; i++) conn_flush(&w->conns[i]);
  maybe_done(w);
}

static void tell_main(worker_t *w) {
  uv_async_send(w->run->wake);
}

static void connect_failed(worker_t *w, const char *what, const char *detail) {
  /* Once per run: the other workers would only say the same. */
  if (atomic_exchange(&w->run->connect_failed, 1) == 0)
    bench_warn("cannot connect to %s: %s%s", w->o->addr, what, detail);
  w->exit_code = EXIT_CONNECT;
  finish(w, "not connected");
  tell_main(w);
}

static void on_connect(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  worker_t *w = c->w;
  if (w->finished || c->closing) return;
  if (status >= 0) {
    if (!w->o->path) uv_tcp_nodelay(&c->h.tcp, 1);
    status = uv_read_start(&c->h.stream, on_alloc, on_read);
  }
  if (status < 0) {
    char detail[128];
    snprintf(detail, sizeof detail, " (%s)", uv_err_name(status));
    connect_failed(w, uv_strerror(status), detail);
    return;
  }
  c->alive = 1;
  w->nalive++;
  if (++w->nconnected == w->nconns) {
    atomic_fetch_add(&w->run->ready, 1);
    tell_main(w);
  }
}

static void on_connect_timeout(uv_timer_t *t) {
  worker_t *w = t->data;
  char detail[64];
  snprintf(detail, sizeof detail, " after %.1f s", w->o->timeout);
  connect_failed(w, "timed out", detail);
}

/* The main thread's orders: "go" once, then maybe "drain" or "stop". */
static void on_ctl(uv_async_t *a) {
  worker_t *w = a->data;
  run_t *run = w->run;
  if (w->finished) return;
  int stop = atomic_load(&run->stop);
  if (stop == STOP_NOW) {
    finish(w, run->stop_why);
    return;
  }
  if (stop == STOP_DRAIN) w->stopping = 1;
  if (!w->started && atomic_load(&run->go)) start_run(w);
  maybe_done(w);
}

/* Every 100 ms: fails requests older than --timeout and publishes progress.
 * A connection that has received nothing for --timeout while a request
 * waits is declared lost, so a stalled server cannot keep a -n run going one
 * timeout at a time. */
static void on_tick(uv_timer_t *t) {
  worker_t *w = t->data;
  uint64_t now = uv_hrtime(), limit = (uint64_t)(w->o->timeout * 1e9);
  for (uint64_t i = 0; i < w->concurrency; i++) {
    caller_t *k = &w->callers[i];
    if (!k->in_flight || now - k->sent_at < limit) continue;
    if (now - k->conn->last_read >= limit)
      conn_close(k->conn, "timeout: the connection stalled", now);
    else
      caller_done(k, "timeout", 7, now);
  }
  for (uint64_t i = 0; i < w->nconns; i++) conn_flush(&w->conns[i]);
  publish(w);
  maybe_done(w);
}

/* ---- setup ---- */

static int start_connect(worker_t *w) {
  for (uint64_t i = 0; i < w->nconns; i++) {
    conn_t *c = &w->conns[i];
    int r = w->o->path ? uv_pipe_init(&w->loop, &c->h.pipe, 0) : uv_tcp_init(&w->loop, &c->h.tcp);
    if (r < 0) return r;
    c->inited = 1;
    c->h.handle.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    if (w->o->path) {
      uv_pipe_connect(&c->connect_req, &c->h.pipe, w->o->path, on_connect);
    } else if ((r = uv_tcp_connect(&c->connect_req, &c->h.tcp,
                                   (const struct sockaddr *)&w->run->addr, on_connect)) < 0) {
      return r;
    }
  }
  return 0;
}

/* Worker `index` of the run takes an even share of the totals: the first
 * (total % workers) workers get one more. */
static uint64_t share(uint64_t total, int workers, int index) {
  return total / (uint64_t)workers + ((uint64_t)index < total % (uint64_t)workers);
}

/* Runs on the main thread, before the worker's thread starts: allocates
 * its connections and callers and initialises its loop and handles. On
 * failure the caller still calls worker_free. */
int worker_init(worker_t *w, run_t *run, int index) {
  const opts_t *o = run->o;
  w->run = run;
  w->o = o;
  w->index = index;
  w->nconns = share(o->conns, o->workers, index);
  w->concurrency = share(o->concurrency, o->workers, index);
  w->warmup = share(o->warmup, o->workers, index);
  w->budget = w->warmup + share(o->n, o->workers, index);
  w->conns = calloc(w->nconns, sizeof *w->conns);
  w->callers = calloc(w->concurrency, sizeof *w->callers);
  if (!w->conns || !w->callers || uv_loop_init(&w->loop) != 0) return UV_ENOMEM;
  w->loop_inited = 1;
  for (uint64_t i = 0; i < w->nconns; i++) {
    conn_t *c = &w->conns[i];
    c->w = w;
    c->index = (uint32_t)i;
    c->ncallers = (uint32_t)((w->concurrency - i + w->nconns - 1) / w->nconns);
    mrpc_decoder_init(&c->dec, &run->limits);
  }
  for (uint64_t i = 0; i < w->concurrency; i++) {
    w->callers[i].conn = &w->conns[i % w->nconns];
    w->callers[i].local = (uint32_t)(i / w->nconns);
  }
  uv_timer_init(&w->loop, &w->tick);
  uv_timer_init(&w->loop, &w->limit);
  uv_async_init(&w->loop, &w->ctl, on_ctl);
  w->tick.data = w->limit.data = w->ctl.data = w;
  w->ctl_open = 1;
  return 0;
}

/* The worker thread: connects, runs the loop until finish() has closed
 * everything, publishes its final counters and tells the main thread. */
void worker_main(void *arg) {
  worker_t *w = arg;
  uv_timer_start(&w->tick, on_tick, 100, 100);
  uv_timer_start(&w->limit, on_connect_timeout, (uint64_t)(w->o->timeout * 1e3), 0);
  int r = start_connect(w);
  if (r < 0) {
    char detail[128];
    snprintf(detail, sizeof detail, " (%s)", uv_err_name(r));
    connect_failed(w, uv_strerror(r), detail);
  }
  uv_run(&w->loop, UV_RUN_DEFAULT);
  publish(w);
  atomic_fetch_add(&w->run->done, 1);
  tell_main(w);
}

/* Runs on the main thread after the worker's thread has been joined. */
void worker_free(worker_t *w) {
  if (w->loop_inited) uv_loop_close(&w->loop);
  for (uint64_t i = 0; w->conns && i < w->nconns; i++) {
    mrpc_decoder_free(&w->conns[i].dec);
    mrpc_buf_free(&w->conns[i].out[0]);
    mrpc_buf_free(&w->conns[i].out[1]);
  }
  free(w->conns);
  free(w->callers);
}
