/* bench_cli.c: moonrpc-bench's command line and latency histogram. */
#include <strings.h>
#include <unistd.h>

#include "bench.h"

/* ---- histogram ---- */

static size_t hist_index(uint64_t v) {
  if (v < HIST_SUB) return (size_t)v;
  int e = 63 - __builtin_clzll(v); /* e >= 7 */
  return (size_t)(e - 6) * HIST_SUB + ((v >> (e - 7)) & (HIST_SUB - 1));
}

static double hist_value(size_t i) {
  if (i < HIST_SUB) return (double)i;
  int e = (int)(i / HIST_SUB) + 6;
  double width = (double)(1ull << (e - 7));
  return ((double)(HIST_SUB + i % HIST_SUB) + 0.5) * width;
}

void hist_add(hist_t *h, uint64_t ns) {
  h->counts[hist_index(ns)]++;
  h->total++;
  if (ns > h->max) h->max = ns;
}

void hist_merge(hist_t *into, const hist_t *from) {
  for (size_t i = 0; i < HIST_BUCKETS; i++) into->counts[i] += from->counts[i];
  into->total += from->total;
  if (from->max > into->max) into->max = from->max;
}

/* The value at quantile q (0..1) in nanoseconds; 0 for an empty histogram. */
double hist_quantile(const hist_t *h, double q) {
  if (h->total == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999), seen = 0;
  if (rank < 1) rank = 1;
  for (size_t i = 0; i < HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      double v = hist_value(i);
      return v > (double)h->max ? (double)h->max : v;
    }
  }
  return (double)h->max;
}

/* ---- options ---- */

void usage(FILE *to) {
  fputs(
    "usage: moonrpc bench [options]\n"
    "Benchmarks any rpcx server (Go rpcx or moonrpc) through an Echo service that\n"
    "returns its argument unchanged; every reply is checked against the request.\n\n"
    "  --addr ADDR          tcp@host:port, host:port or unix@/path (default tcp@127.0.0.1:8972)\n"
    "  -c, --concurrency N  callers, each with one request in flight (default 10)\n"
    "  --conns N            connections; callers share them round-robin (default 1)\n"
    "  --workers N|auto     client threads, each with its own loop and an even share\n"
    "                       of -c, --conns and -n; auto: one per core, at most\n"
    "                       --conns; N > --conns is an error (default 1)\n"
    "  -n, --requests N     requests to measure, over all workers (default 100000)\n"
    "  -d, --duration SECS  run each worker for a duration instead; -n is ignored\n"
    "  --size SIZE[,SIZE..] payload bytes, with K/KiB (1024) or M/MiB (1048576);\n"
    "                       a list does one run per size in turn (default 64)\n"
    "  --service S          service name (default Echo)\n"
    "  --method M           method name (default Echo)\n"
    "  --serialize KIND     msgpack (a bin of SIZE bytes), json (a string of SIZE\n"
    "                       characters) or raw (SIZE bytes) (default msgpack)\n"
    "  --warmup N           requests not measured at the start, over all workers\n"
    "                       (default: 1000 or 1% of -n, whichever is smaller)\n"
    "  --timeout SECS       per request; a later reply counts as an error (default 5)\n"
    "  --server-pid PID[,PID..]  report the server's CPU per call (from /proc), and\n"
    "                       its resident set (VmRSS) every second, after warm-up\n"
    "                       the first, largest and last sample and the growth\n"
    "  --lua-memory         also call SERVICE.Memory (moonrpc echo --lua has it: the\n"
    "                       Lua state's KiB after a full collection) before the run,\n"
    "                       every second and after it, on a connection of its own\n"
    "  --json               print one JSON object per run on stdout, and the\n"
    "                       table and progress on stderr\n"
    "  -h, --help           show this help\n\n"
    "Exit status: 0 no errors, 1 some requests failed, 2 usage error, 3 cannot connect.\n\n"
    "examples:\n"
    "  moonrpc bench -c 100 -n 200000\n"
    "  moonrpc bench -c 100 --conns 100 --workers auto -d 5 --size 64,1KiB,64KiB,1MiB\n"
    "  moonrpc bench --addr unix@/tmp/echo.sock -c 10 -d 10 --size 1024\n"
    "  moonrpc bench --addr 10.0.0.5:8972 --conns 4 -c 400 --serialize json --json\n"
    "  moonrpc bench -c 100 -d 5 --server-pid $(pgrep -d, moonrpc-echo)\n"
    "  moonrpc bench -c 100 -n 5000000 --server-pid PID --lua-memory   (a soak)\n",
    to);
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-' || v < min || v > max) return -1;
  *out = v;
  return 0;
}

static int parse_secs(const char *s, double *out) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v > 0) || v > 1e7) return -1;
  *out = v;
  return 0;
}

/* One size: digits with an optional K, KiB, M or MiB (any case; all
 * binary). */
static int parse_size(const char *s, size_t len, uint64_t *out) {
  char buf[32], *end;
  if (len == 0 || len >= sizeof buf || s[0] < '0' || s[0] > '9') return -1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  errno = 0;
  unsigned long long v = strtoull(buf, &end, 10), mult = 1;
  if (errno) return -1;
  if (*end == 'k' || *end == 'K') mult = 1024, end++;
  else if (*end == 'm' || *end == 'M') mult = 1024 * 1024, end++;
  if (mult > 1 && strcasecmp(end, "ib") == 0) end += 2;
  if (*end || v > (MRPC_DEFAULT_MAX_FRAME - 4096) / mult) return -1;
  *out = v * mult;
  return 0;
}

/* A comma-separated list of sizes (parse_size) or of PIDs. */
static int parse_list(const char *s, int pids, opts_t *o) {
  int n = 0;
  for (const char *p = s;; n++) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if (pids) {
      uint64_t v;
      char buf[24];
      if (n == MAX_PIDS || len == 0 || len >= sizeof buf) return -1;
      memcpy(buf, p, len);
      buf[len] = '\0';
      if (parse_u64(buf, 1, 0x7fffffff, &v) != 0) return -1;
      o->pids[n] = (int)v;
    } else if (n == MAX_SIZES || parse_size(p, len, &o->sizes[n]) != 0) {
      return -1;
    }
    if (!comma) break;
    p = comma + 1;
  }
  if (pids) o->npids = n + 1;
  else o->nsizes = n + 1;
  return 0;
}

/* Splits ADDR into a unix path or a tcp host and port, and stores the
 * normalised form in o->addr. */
static int parse_addr(opts_t *o, const char *a) {
  if (strncmp(a, "unix@", 5) == 0) {
    if (!a[5] || strlen(a) >= sizeof o->addr) return -1;
    o->path = a + 5;
    snprintf(o->addr, sizeof o->addr, "%s", a);
    return 0;
  }
  if (strncmp(a, "tcp@", 4) == 0) a += 4;
  const char *colon = strrchr(a, ':');
  uint64_t port;
  if (!colon || colon == a || parse_u64(colon + 1, 1, 65535, &port) != 0) return -1;
  size_t hl = (size_t)(colon - a);
  if (hl >= sizeof o->hostbuf) return -1;
  if (a[0] == '[' && a[hl - 1] == ']') { /* [v6]:port */
    memcpy(o->hostbuf, a + 1, hl - 2);
    o->hostbuf[hl - 2] = '\0';
  } else {
    memcpy(o->hostbuf, a, hl);
    o->hostbuf[hl] = '\0';
  }
  o->host = o->hostbuf;
  o->port = (int)port;
  snprintf(o->addr, sizeof o->addr, "tcp@%s", a);
  return 0;
}

static int bad(const char *what, const char *val) {
  fprintf(stderr, PROG ": invalid %s: '%s' (see --help)\n", what, val);
  return -1;
}

/* Fills *o from argv. Returns 0, 1 after --help, or -1 on a usage error. */
int parse_opts(opts_t *o, int argc, char **argv) {
  enum { O_ADDR = 256, O_CONNS, O_WORKERS, O_SIZE, O_SERVICE, O_METHOD, O_SERIALIZE, O_WARMUP,
         O_TIMEOUT, O_PID, O_JSON, O_LUAMEM };
  static const struct option longs[] = {
    {"addr", required_argument, NULL, O_ADDR},
    {"concurrency", required_argument, NULL, 'c'},
    {"conns", required_argument, NULL, O_CONNS},
    {"workers", required_argument, NULL, O_WORKERS},
    {"requests", required_argument, NULL, 'n'},
    {"duration", required_argument, NULL, 'd'},
    {"size", required_argument, NULL, O_SIZE},
    {"service", required_argument, NULL, O_SERVICE},
    {"method", required_argument, NULL, O_METHOD},
    {"serialize", required_argument, NULL, O_SERIALIZE},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"server-pid", required_argument, NULL, O_PID},
    {"json", no_argument, NULL, O_JSON},
    {"lua-memory", no_argument, NULL, O_LUAMEM},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
  };
  const char *addr = "tcp@127.0.0.1:8972";
  const char *workers = "1";
  int warmup_set = 0, ch;
  o->concurrency = 10, o->conns = 1, o->n = 100000, o->timeout = 5;
  o->sizes[0] = 64, o->nsizes = 1;
  o->service = "Echo", o->method = "Echo", o->ser_name = "msgpack";
  o->serialize = MRPC_SERIALIZE_MSGPACK;
  while ((ch = getopt_long(argc, argv, "c:n:d:h", longs, NULL)) != -1) {
    switch (ch) {
    case O_ADDR: addr = optarg; break;
    case 'c': if (parse_u64(optarg, 1, 1000000, &o->concurrency)) return bad("-c", optarg); break;
    case O_CONNS: if (parse_u64(optarg, 1, 100000, &o->conns)) return bad("--conns", optarg); break;
    case 'n': if (parse_u64(optarg, 1, UINT64_MAX / 2, &o->n)) return bad("-n", optarg); break;
    case 'd': if (parse_secs(optarg, &o->duration)) return bad("-d", optarg); break;
    case O_WORKERS: workers = optarg; break;
    case O_SIZE: if (parse_list(optarg, 0, o)) return bad("--size", optarg); break;
    case O_PID: if (parse_list(optarg, 1, o)) return bad("--server-pid", optarg); break;
    case O_SERVICE: o->service = optarg; break;
    case O_METHOD: o->method = optarg; break;
    case O_SERIALIZE:
      o->ser_name = optarg;
      if (strcmp(optarg, "msgpack") == 0) o->serialize = MRPC_SERIALIZE_MSGPACK;
      else if (strcmp(optarg, "json") == 0) o->serialize = MRPC_SERIALIZE_JSON;
      else if (strcmp(optarg, "raw") == 0) o->serialize = MRPC_SERIALIZE_NONE;
      else return bad("--serialize", optarg);
      break;
    case O_WARMUP:
      if (parse_u64(optarg, 0, UINT64_MAX / 2, &o->warmup)) return bad("--warmup", optarg);
      warmup_set = 1;
      break;
    case O_TIMEOUT: if (parse_secs(optarg, &o->timeout)) return bad("--timeout", optarg); break;
    case O_JSON: o->json = 1; break;
    case O_LUAMEM: o->lua_memory = 1; break;
    case 'h': usage(stdout); return 1;
    default: return -1;
    }
  }
  if (optind < argc) return bad("argument", argv[optind]);
  if (parse_addr(o, addr) != 0) return bad("--addr", addr);
  if (!warmup_set) o->warmup = o->duration > 0 ? 1000 : (o->n / 100 < 1000 ? o->n / 100 : 1000);
  if (o->conns > o->concurrency) o->conns = o->concurrency; /* no idle sockets */
  /* auto is "as many as helps": one per core, but no worker without a
   * connection. An explicit N is taken literally, so it must fit. */
  uint64_t nw;
  if (strcmp(workers, "auto") == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    nw = cores < 1 ? 1 : (uint64_t)cores;
    if (nw > o->conns) nw = o->conns;
    if (nw > MAX_WORKERS) nw = MAX_WORKERS;
  } else if (parse_u64(workers, 1, MAX_WORKERS, &nw) != 0) {
    return bad("--workers", workers);
  } else if (nw > o->conns) {
    fprintf(stderr, PROG ": --workers %" PRIu64 " needs at least as many connections, and there are"
            " %" PRIu64 " (--conns, at most -c); raise --conns (see --help)\n", nw, o->conns);
    return -1;
  }
  o->workers = (int)nw;
  for (int i = 0; i < o->npids; i++) {
    uint64_t u, s;
    if (cpu_read_pid(o->pids[i], &u, &s) != 0 || rss_read_pid(o->pids[i], &u) != 0) {
      fprintf(stderr, PROG ": --server-pid %d: cannot read /proc/%d: %s\n", o->pids[i],
              o->pids[i], strerror(errno));
      return -1;
    }
  }
  return 0;
}
