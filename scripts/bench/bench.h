/* bench.h: moonrpc-bench's types, shared by bench.c (the run: callers,
 * connections, the loop) and bench_cli.c (options, the histogram, the
 * report). */
#ifndef MOONRPC_BENCH_H
#define MOONRPC_BENCH_H

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "moonrpc/frame.h"

enum { EXIT_ERRORS = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

typedef struct opts_s {
  char addr[1024];       /* normalised: tcp@host:port or unix@/path */
  const char *host;      /* points into hostbuf (tcp only) */
  char hostbuf[1024];
  int port;
  const char *path;      /* unix socket path, or NULL for tcp */
  uint64_t concurrency, conns, n, warmup, size;
  double duration, timeout; /* seconds; duration 0 means "run -n requests" */
  const char *service, *method, *ser_name;
  int serialize; /* 0, 1 or 3: the type code, shifted into byte 3 */
  int json;
} opts_t;

/* Latency histogram with log-spaced buckets, like HDR: values below 128 ns
 * get a bucket each, above that every power of two is split into 128 equal
 * buckets, so a bucket's midpoint is within 0.4% of any value in it. */
#define HIST_SUB 128
#define HIST_BUCKETS (HIST_SUB * 58)
typedef struct hist_s {
  uint64_t counts[HIST_BUCKETS];
  uint64_t total, max;
} hist_t;

struct bench_s;

typedef struct conn_s {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  uv_connect_t connect_req;
  uv_write_t write_req;
  struct bench_s *b;
  uint32_t index, ncallers;
  mrpc_decoder_t dec;
  /* out[fill] collects requests; while a uv_write is in flight the other
   * buffer belongs to libuv and stays untouched until on_write. */
  mrpc_buf_t out[2];
  int fill, writing, inited, alive, closing;
  uint64_t last_read; /* hrtime of the last bytes received */
} conn_t;

/* A caller's seq is (round << 32 | local): local is its index among the
 * callers of its connection, so a reply finds its caller by arithmetic, and
 * a late reply to a timed-out request (older round) is recognised and
 * dropped. */
typedef struct caller_s {
  conn_t *conn;
  uint32_t local, round;
  uint64_t seq, sent_at;
  int in_flight;
} caller_t;

typedef struct bench_s {
  opts_t o;
  uv_loop_t loop;
  uv_timer_t tick;   /* every 100 ms: request timeouts and the progress line */
  uv_timer_t limit;  /* connect timeout, then -d duration, then hard stop */
  uv_signal_t sigint;
  conn_t *conns;
  caller_t *callers;
  mrpc_buf_t req;     /* the request frame, encoded once with seq 0 */
  mrpc_buf_t payload; /* what every reply must carry back */
  uint64_t budget;    /* requests to issue in -n mode: warmup + n */
  uint64_t issued, completed, counted, inflight;
  uint64_t errors, warmup_errors; /* failed requests measured / in warmup */
  uint64_t t0, t_start, t_end, last_progress, progress_count;
  uint32_t nalive, nconnected;
  int measuring, stopping, finished, exit_code;
  char first_error[512];
  hist_t hist;
} bench_t;

/* bench_cli.c */
void hist_add(hist_t *h, uint64_t ns);
double hist_quantile(const hist_t *h, double q);
void usage(FILE *to);
int parse_opts(opts_t *o, int argc, char **argv);
void report(const bench_t *b);

#endif
