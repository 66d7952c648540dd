/* bench.h: moonrpc-bench's types, shared by bench.c (one worker's loop:
 * callers, connections), bench_run.c (the threads, the runs over sizes, the
 * progress line), bench_cli.c (options, the histogram) and bench_report.c
 * (the table, JSON, CPU cost per call).
 *
 * Ownership across threads: opts_t and the read-only half of run_t are
 * written before the worker threads start and only read after. Each
 * worker_t belongs to its thread until the thread has been joined; the
 * other threads touch only its `pub` atomics and `ctl` (uv_async_send). */
#ifndef MOONRPC_BENCH_H
#define MOONRPC_BENCH_H

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "moonrpc/frame.h"

#define PROG "moonrpc bench"

enum { EXIT_ERRORS = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };
enum { MAX_SIZES = 32, MAX_PIDS = 64, MAX_WORKERS = 1024 };

typedef struct opts_s {
  char addr[1024];       /* normalised: tcp@host:port or unix@/path */
  const char *host;      /* points into hostbuf (tcp only) */
  char hostbuf[1024];
  int port;
  const char *path;      /* unix socket path, or NULL for tcp */
  uint64_t concurrency, conns, n, warmup; /* totals over all workers */
  uint64_t sizes[MAX_SIZES]; /* one run per size, in this order */
  int nsizes;
  int workers;
  int pids[MAX_PIDS]; /* --server-pid */
  int npids;
  double duration, timeout; /* seconds; duration 0 means "run -n requests" */
  const char *service, *method, *ser_name;
  int serialize; /* 0, 1 or 3: the type code, shifted into byte 3 */
  int json;
  int lua_memory; /* --lua-memory: sample SERVICE.Memory once a second */
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

/* CPU time used so far, in microseconds: the --server-pid processes (all
 * their threads) and this process (all its threads). */
typedef struct cpu_sample_s {
  uint64_t server_user, server_sys, client_user, client_sys;
  int server_ok; /* 0 when there is no --server-pid or one was unreadable */
} cpu_sample_t;

/* A figure sampled once a second (KiB): the first sample after warm-up,
 * the largest and the last. n counts the samples. */
typedef struct track_s {
  uint64_t n;
  double first, max, last;
} track_t;

/* The --lua-memory probe: one blocking connection of the main thread's. */
typedef struct probe_s {
  int fd, connected, inited, failed;
  uint64_t seq;
  mrpc_decoder_t dec; /* owned once inited; freed by probe_close */
} probe_t;

struct worker_s;
struct run_s;

typedef struct conn_s {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } h;
  uv_connect_t connect_req;
  uv_write_t write_req;
  struct worker_s *w;
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

/* What a worker publishes for the progress line, every 100 ms. */
typedef struct pub_s {
  _Atomic uint64_t completed, counted, errors;
  atomic_int measuring;
} pub_t;

/* One client thread: its own loop, its share of the connections and
 * callers, its own counters and histogram. */
typedef struct worker_s {
  struct run_s *run;       /* read-only from here, except its atomics */
  const opts_t *o;
  int index;
  uint64_t concurrency, nconns, budget, warmup; /* this worker's share */
  uv_thread_t thread;
  uv_loop_t loop;
  uv_timer_t tick;   /* every 100 ms: request timeouts, publishing progress */
  uv_timer_t limit;  /* connect timeout, then -d duration, then hard stop */
  uv_async_t ctl;    /* the main thread's "go" and "stop" (see run_t) */
  int ctl_open;      /* under run->lock: whether the main thread may send */
  int loop_inited;
  conn_t *conns;     /* owned; freed by worker_free */
  caller_t *callers; /* owned; freed by worker_free */
  uint64_t issued, completed, counted, inflight;
  uint64_t errors, warmup_errors; /* failed requests measured / in warmup */
  uint64_t t_start, t_end; /* measured window; t_start 0 if never measured */
  uint32_t nalive, nconnected;
  int started, measuring, stopping, finished, exit_code;
  char first_error[512];
  hist_t hist;
  pub_t pub;
} worker_t;

enum { STOP_NONE, STOP_DRAIN, STOP_NOW };

/* One run: one payload size, fresh connections, o->workers threads. */
typedef struct run_s {
  const opts_t *o;
  uint64_t size;
  struct sockaddr_storage addr; /* resolved once (tcp only) */
  mrpc_limits_t limits;         /* the decoders': a reply echoes the request */
  mrpc_buf_t req;     /* the request frame, encoded once with seq 0 */
  mrpc_buf_t payload; /* what every reply must carry back */
  worker_t *workers;
  uv_async_t *wake;   /* the main thread's: a worker is ready, failed or done */
  uv_mutex_t lock;    /* orders uv_async_send to a worker's ctl with its close */
  /* Written by any thread. */
  atomic_int ready, done, go, stop, connect_failed, error_shown;
  const char *stop_why; /* set before `stop` is stored */
  atomic_int cpu_started, measuring_left; /* who takes the CPU samples */
  cpu_sample_t cpu0, cpu1; /* written once each, by the thread that wins */
  uint64_t t_go;           /* hrtime of "go", for the progress line */
  /* The main thread's memory samples (bench_mem.c): after warm-up, once a
   * second and at the end; lua_before is taken before the connections. */
  track_t rss, lua;
  double lua_before;       /* -1 when unknown */
} run_t;

/* The merged outcome of one run, for the report. */
typedef struct result_s {
  uint64_t size, counted, errors, warmup_errors;
  double secs, rps, mb_per_s;
  double lat_ms[5]; /* p50, p90, p99, p99.9, max */
  double server_user_us, server_sys_us, client_user_us, client_sys_us; /* per call */
  int server_cpu; /* whether the server figures are known */
  track_t rss, lua; /* the server's VmRSS and Lua memory, KiB (n 0: unknown) */
  double lua_before;
  char first_error[512];
} result_t;

/* bench_run.c: a line on stderr, "moonrpc bench: " first; it clears the
 * progress line on a terminal. */
void bench_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* bench.c: one worker */
int worker_init(worker_t *w, run_t *run, int index);
void worker_main(void *arg); /* the thread's body */
void worker_free(worker_t *w);

/* bench_cli.c */
void hist_add(hist_t *h, uint64_t ns);
void hist_merge(hist_t *into, const hist_t *from);
double hist_quantile(const hist_t *h, double q);
void usage(FILE *to);
int parse_opts(opts_t *o, int argc, char **argv);

/* bench_mem.c */
void track_add(track_t *t, double v);
int rss_read_pid(int pid, uint64_t *kib);
double rss_sample(const opts_t *o); /* KiB over the --server-pid list; -1 unknown */
double probe_lua_memory(probe_t *p, const opts_t *o, const struct sockaddr_storage *addr);
void probe_close(probe_t *p);

/* bench_report.c */
int cpu_read_pid(int pid, uint64_t *user_us, uint64_t *sys_us);
void cpu_sample(const opts_t *o, cpu_sample_t *s);
void result_cpu(result_t *r, const cpu_sample_t *a, const cpu_sample_t *b);
const char *report_size(uint64_t n, char *buf, size_t len); /* 64, 1KiB, 1MiB */
void report_header(FILE *to, const opts_t *o);
void report_row(FILE *to, const opts_t *o, const result_t *r);
void report_json(FILE *to, const opts_t *o, const result_t *r);

#endif
