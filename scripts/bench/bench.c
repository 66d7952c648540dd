/* moonrpc-bench: a closed-loop benchmark client for any rpcx server.
 *
 * `moonrpc bench` execs this program. It drives an Echo service (rpcx's own
 * benchmark service, or ours) with C callers on one libuv loop: each caller
 * keeps exactly one request in flight and sends the next one when its reply
 * arrives. Callers are spread round-robin over the connections, so many
 * callers share one socket, as in rpcx's Go benchmark. Because the server
 * echoes the payload unchanged, every reply can be checked byte for byte.
 *
 * What bounds throughput on loopback is system calls per request (see
 * REFERENCE.md), so the hot path makes at most one read and one write per
 * connection per loop iteration: the request frame is encoded once and
 * copied with its seq patched, replies are decoded in place from the read
 * buffer, and everything queued during one callback goes out in one write.
 *
 * Exit status: 0 no errors, 1 some request failed, 2 usage error, 3 could
 * not connect. */

#include "bench.h"

/* ---- run control ---- */

static void conn_flush(conn_t *c);
static void conn_close(conn_t *c, const char *why, uint64_t now);

static void note_error(bench_t *b, const char *msg, size_t len) {
  if (b->measuring) b->errors++;
  else b->warmup_errors++;
  if (b->first_error[0]) return;
  if (len >= sizeof b->first_error) len = sizeof b->first_error - 1;
  memcpy(b->first_error, msg, len);
  b->first_error[len] = '\0';
  fprintf(stderr, "moonrpc-bench: first error: %s\n", b->first_error);
}

static int can_issue(const bench_t *b) {
  return !b->stopping && !b->finished && b->nalive > 0 &&
         (b->o.duration > 0 || b->issued < b->budget);
}

static void on_duration(uv_timer_t *t);

static void start_measuring(bench_t *b, uint64_t now) {
  b->measuring = 1;
  b->t_start = b->t_end = now;
  if (b->o.duration > 0)
    uv_timer_start(&b->limit, on_duration, (uint64_t)(b->o.duration * 1e3), 0);
}

/* Queues the caller's next request into its connection's fill buffer; the
 * write happens when the current callback flushes. */
static void caller_send(caller_t *k, uint64_t now) {
  conn_t *c = k->conn;
  bench_t *b = c->b;
  mrpc_buf_t *o = &c->out[c->fill];
  size_t at = o->len;
  if (mrpc_buf_append(o, b->req.data, b->req.len) != 0) {
    conn_close(c, "out of memory", now);
    return;
  }
  k->seq = (uint64_t)++k->round << 32 | k->local;
  for (int i = 0; i < 8; i++) o->data[at + 4 + i] = (char)(k->seq >> (56 - 8 * i));
  k->sent_at = now;
  k->in_flight = 1;
  b->inflight++;
  b->issued++;
}

/* Ends the caller's current request, with `err` NULL on success. The first
 * `warmup` completions only start the measurement. Sends the next request
 * when the run goes on. */
static void caller_done(caller_t *k, const char *err, size_t err_len, uint64_t now) {
  bench_t *b = k->conn->b;
  k->in_flight = 0;
  b->inflight--;
  b->completed++;
  if (err) note_error(b, err, err_len);
  if (!b->measuring) {
    if (b->completed >= b->o.warmup) start_measuring(b, now);
  } else {
    b->counted++;
    b->t_end = now;
    if (!err) hist_add(&b->hist, now - k->sent_at);
  }
  if (k->conn->alive && can_issue(b)) caller_send(k, now);
}

/* Stops everything: closes the timers, the signal handle and every
 * connection (requests still in flight count as errors with `why`). uv_run
 * returns once the close callbacks have run. */
static void finish(bench_t *b, const char *why) {
  if (b->finished) return;
  b->finished = 1;
  uint64_t now = uv_hrtime();
  for (uint64_t i = 0; i < b->o.conns; i++) conn_close(&b->conns[i], why, now);
  uv_close((uv_handle_t *)&b->tick, NULL);
  uv_close((uv_handle_t *)&b->limit, NULL);
  uv_close((uv_handle_t *)&b->sigint, NULL);
}

static void maybe_done(bench_t *b) {
  if (!b->finished && b->nconnected == b->o.conns && b->inflight == 0 && !can_issue(b))
    finish(b, "run ended");
}

static void on_hard_limit(uv_timer_t *t) {
  finish(t->data, "global timeout: no reply before the run's deadline");
}

static void on_duration(uv_timer_t *t) {
  bench_t *b = t->data;
  b->stopping = 1;
  uv_timer_start(&b->limit, on_hard_limit, (uint64_t)((b->o.timeout + 5) * 1e3), 0);
  maybe_done(b);
}

static void on_sigint(uv_signal_t *s, int signum) {
  bench_t *b = s->data;
  if (b->stopping) {
    finish(b, "interrupted");
    return;
  }
  fprintf(stderr, "moonrpc-bench: interrupted; waiting for replies in flight\n");
  b->stopping = 1;
  maybe_done(b);
}

/* ---- connections ---- */

/* Closes the connection once; its requests in flight count as errors. The
 * memory stays in b->conns until the loop has finished. */
static void conn_close(conn_t *c, const char *why, uint64_t now) {
  bench_t *b = c->b;
  if (c->closing || !c->inited) return;
  c->closing = 1;
  if (c->alive) b->nalive--;
  c->alive = 0;
  for (uint32_t j = 0; j < c->ncallers; j++) {
    caller_t *k = &b->callers[(uint64_t)j * b->o.conns + c->index];
    if (k->in_flight) caller_done(k, why, strlen(why), now);
  }
  uv_close(&c->h.handle, NULL);
}

static void conn_fail(conn_t *c, const char *what, int err, uint64_t now) {
  char msg[256];
  snprintf(msg, sizeof msg, "connection %u lost (%s): %s (%s)", c->index, what,
           err < -30000 ? mrpc_strerror(err) : uv_strerror(err),
           err < -30000 ? mrpc_err_name(err) : uv_err_name(err));
  if (!c->closing && !c->b->finished) fprintf(stderr, "moonrpc-bench: %s\n", msg);
  conn_close(c, msg, now);
}

static void on_write(uv_write_t *req, int status) {
  conn_t *c = req->data;
  c->writing = 0;
  c->out[c->fill ^ 1].len = 0;
  if (c->closing) return;
  if (status < 0) {
    conn_fail(c, "write", status, uv_hrtime());
    maybe_done(c->b);
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
  bench_t *b = c->b;
  uint32_t local = (uint32_t)f->seq;
  if (local >= c->ncallers) return;
  caller_t *k = &b->callers[(uint64_t)local * b->o.conns + c->index];
  if (!k->in_flight || k->seq != f->seq) return;
  if (!mrpc_frame_is_response(f)) {
    caller_done(k, "reply without the response bit", 30, now);
  } else if (mrpc_frame_status(f) != MRPC_STATUS_NORMAL) {
    const mrpc_meta_t *m = mrpc_frame_meta_get(f, MRPC_META_ERROR);
    if (m) caller_done(k, m->val, m->val_len, now);
    else caller_done(k, "error status without __rpcx_error__", 35, now);
  } else if (f->payload_len != b->payload.len ||
             memcmp(f->payload, b->payload.data, b->payload.len) != 0) {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "reply payload differs from the request (%zu bytes, sent %zu)",
                     f->payload_len, b->payload.len);
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
  maybe_done(c->b);
}

static void start_run(bench_t *b) {
  uint64_t now = uv_hrtime();
  uv_timer_stop(&b->limit);
  b->t0 = b->last_progress = now;
  for (uint64_t i = 0; i < b->o.conns; i++) b->conns[i].last_read = now;
  if (b->o.warmup == 0) start_measuring(b, now);
  for (uint64_t i = 0; i < b->o.concurrency && can_issue(b); i++)
    caller_send(&b->callers[i], now);
  for (uint64_t i = 0; i < b->o.conns; i++) conn_flush(&b->conns[i]);
  maybe_done(b);
}

static void on_connect(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  bench_t *b = c->b;
  if (b->finished || c->closing) return;
  if (status < 0) {
    fprintf(stderr, "moonrpc-bench: cannot connect to %s: %s (%s)\n", b->o.addr,
            uv_strerror(status), uv_err_name(status));
    b->exit_code = EXIT_CONNECT;
    finish(b, "not connected");
    return;
  }
  if (!b->o.path) uv_tcp_nodelay(&c->h.tcp, 1);
  int r = uv_read_start(&c->h.stream, on_alloc, on_read);
  if (r < 0) {
    on_connect(req, r);
    return;
  }
  c->alive = 1;
  b->nalive++;
  if (++b->nconnected == b->o.conns) start_run(b);
}

static void on_connect_timeout(uv_timer_t *t) {
  bench_t *b = t->data;
  fprintf(stderr, "moonrpc-bench: cannot connect to %s: timed out after %.1f s\n",
          b->o.addr, b->o.timeout);
  b->exit_code = EXIT_CONNECT;
  finish(b, "not connected");
}

/* Every 100 ms: fails requests older than --timeout, and prints progress
 * once a second. A connection that has received nothing for --timeout while
 * a request waits is declared lost, so a stalled server cannot keep a -n
 * run going one timeout at a time. */
static void on_tick(uv_timer_t *t) {
  bench_t *b = t->data;
  uint64_t now = uv_hrtime(), limit = (uint64_t)(b->o.timeout * 1e9);
  for (uint64_t i = 0; i < b->o.concurrency; i++) {
    caller_t *k = &b->callers[i];
    if (!k->in_flight || now - k->sent_at < limit) continue;
    if (now - k->conn->last_read >= limit)
      conn_close(k->conn, "timeout: the connection stalled", now);
    else
      caller_done(k, "timeout", 7, now);
  }
  for (uint64_t i = 0; i < b->o.conns; i++) conn_flush(&b->conns[i]);
  if (b->t0 != 0 && now - b->last_progress >= 1000000000ull) {
    double dt = (double)(now - b->last_progress) / 1e9;
    fprintf(stderr, "[%6.1f s] completed %" PRIu64 "  errors %" PRIu64 "  %.0f req/s%s\n",
            (double)(now - b->t0) / 1e9, b->counted, b->errors,
            (double)(b->completed - b->progress_count) / dt, b->measuring ? "" : "  (warmup)");
    b->last_progress = now;
    b->progress_count = b->completed;
  }
  maybe_done(b);
}

/* ---- setup ---- */

static int build_request(bench_t *b) {
  opts_t *o = &b->o;
  mrpc_buf_t *p = &b->payload;
  size_t sz = (size_t)o->size;
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
  return mrpc_frame_encode(&b->req, &f);
}

/* Starts every connection; the run begins when the last one is up. */
static int start_connect(bench_t *b) {
  struct sockaddr_storage ss;
  if (!b->o.path) {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (uv_ip4_addr(b->o.host, b->o.port, a4) != 0 && uv_ip6_addr(b->o.host, b->o.port, a6) != 0) {
      uv_getaddrinfo_t gai;
      struct addrinfo hints;
      memset(&hints, 0, sizeof hints);
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      int r = uv_getaddrinfo(&b->loop, &gai, NULL, b->o.host, NULL, &hints); /* synchronous */
      if (r < 0) return r;
      memcpy(&ss, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
      uv_freeaddrinfo(gai.addrinfo);
      if (ss.ss_family == AF_INET) a4->sin_port = htons((uint16_t)b->o.port);
      else a6->sin6_port = htons((uint16_t)b->o.port);
    }
  }
  for (uint64_t i = 0; i < b->o.conns; i++) {
    conn_t *c = &b->conns[i];
    int r = b->o.path ? uv_pipe_init(&b->loop, &c->h.pipe, 0) : uv_tcp_init(&b->loop, &c->h.tcp);
    if (r < 0) return r;
    c->inited = 1;
    c->h.handle.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    if (b->o.path) {
      uv_pipe_connect(&c->connect_req, &c->h.pipe, b->o.path, on_connect);
    } else if ((r = uv_tcp_connect(&c->connect_req, &c->h.tcp, (struct sockaddr *)&ss, on_connect)) < 0) {
      return r;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  bench_t *b = calloc(1, sizeof *b);
  if (!b) return EXIT_ERRORS;
  /* A server that closes while we write must give EPIPE, not kill us. */
  signal(SIGPIPE, SIG_IGN);
  int rc = parse_opts(&b->o, argc, argv);
  if (rc != 0) {
    free(b);
    return rc > 0 ? 0 : EXIT_USAGE;
  }
  b->budget = b->o.warmup + b->o.n;
  b->conns = calloc(b->o.conns, sizeof *b->conns);
  b->callers = calloc(b->o.concurrency, sizeof *b->callers);
  if (!b->conns || !b->callers || build_request(b) != 0 || uv_loop_init(&b->loop) != 0) {
    fprintf(stderr, "moonrpc-bench: out of memory\n");
    return EXIT_ERRORS;
  }
  /* Replies echo the request, so let the decoder take at least its size. */
  mrpc_limits_t lim = {0};
  lim.max_frame = (uint32_t)(b->req.len + 65536);
  for (uint64_t i = 0; i < b->o.conns; i++) {
    conn_t *c = &b->conns[i];
    c->b = b;
    c->index = (uint32_t)i;
    c->ncallers = (uint32_t)((b->o.concurrency - i + b->o.conns - 1) / b->o.conns);
    mrpc_decoder_init(&c->dec, &lim);
  }
  for (uint64_t i = 0; i < b->o.concurrency; i++) {
    b->callers[i].conn = &b->conns[i % b->o.conns];
    b->callers[i].local = (uint32_t)(i / b->o.conns);
  }
  uv_timer_init(&b->loop, &b->tick);
  uv_timer_init(&b->loop, &b->limit);
  uv_signal_init(&b->loop, &b->sigint);
  b->tick.data = b->limit.data = b->sigint.data = b;
  uv_signal_start(&b->sigint, on_sigint, SIGINT);
  uv_timer_start(&b->tick, on_tick, 100, 100);
  uv_timer_start(&b->limit, on_connect_timeout, (uint64_t)(b->o.timeout * 1e3), 0);

  int r = start_connect(b);
  if (r < 0) {
    fprintf(stderr, "moonrpc-bench: cannot connect to %s: %s (%s)\n", b->o.addr,
            uv_strerror(r), uv_err_name(r));
    b->exit_code = EXIT_CONNECT;
    finish(b, "not connected");
  }
  uv_run(&b->loop, UV_RUN_DEFAULT);

  if (b->exit_code == 0) {
    report(b);
    b->exit_code = b->errors || b->warmup_errors ? EXIT_ERRORS : 0;
  }
  rc = b->exit_code;
  uv_loop_close(&b->loop);
  for (uint64_t i = 0; i < b->o.conns; i++) {
    mrpc_decoder_free(&b->conns[i].dec);
    mrpc_buf_free(&b->conns[i].out[0]);
    mrpc_buf_free(&b->conns[i].out[1]);
  }
  mrpc_buf_free(&b->req);
  mrpc_buf_free(&b->payload);
  free(b->conns);
  free(b->callers);
  free(b);
  return rc;
}
