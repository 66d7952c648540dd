/* bench_cli.c: moonrpc-bench's command line, latency histogram and
 * summary report. */
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
    "  -n, --requests N     requests to measure (default 100000)\n"
    "  -d, --duration SECS  run for a duration instead; -n is then ignored\n"
    "  --size BYTES         payload size (default 64)\n"
    "  --service S          service name (default Echo)\n"
    "  --method M           method name (default Echo)\n"
    "  --serialize KIND     msgpack (a bin of SIZE bytes), json (a string of SIZE\n"
    "                       characters) or raw (SIZE bytes) (default msgpack)\n"
    "  --warmup N           requests not measured at the start (default: 1000 or 1%\n"
    "                       of -n, whichever is smaller)\n"
    "  --timeout SECS       per request; a later reply counts as an error (default 5)\n"
    "  --json               print the summary as one JSON object as well\n"
    "  -h, --help           show this help\n\n"
    "Exit status: 0 no errors, 1 some requests failed, 2 usage error, 3 cannot connect.\n\n"
    "examples:\n"
    "  moonrpc bench -c 100 -n 200000\n"
    "  moonrpc bench --addr unix@/tmp/echo.sock -c 10 -d 10 --size 1024\n"
    "  moonrpc bench --addr 10.0.0.5:8972 --conns 4 -c 400 --serialize json --json\n",
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
  fprintf(stderr, "moonrpc-bench: invalid %s: '%s' (see --help)\n", what, val);
  return -1;
}

/* Fills *o from argv. Returns 0, 1 after --help, or -1 on a usage error. */
int parse_opts(opts_t *o, int argc, char **argv) {
  enum { O_ADDR = 256, O_CONNS, O_SIZE, O_SERVICE, O_METHOD, O_SERIALIZE, O_WARMUP, O_TIMEOUT, O_JSON };
  static const struct option longs[] = {
    {"addr", required_argument, NULL, O_ADDR},
    {"concurrency", required_argument, NULL, 'c'},
    {"conns", required_argument, NULL, O_CONNS},
    {"requests", required_argument, NULL, 'n'},
    {"duration", required_argument, NULL, 'd'},
    {"size", required_argument, NULL, O_SIZE},
    {"service", required_argument, NULL, O_SERVICE},
    {"method", required_argument, NULL, O_METHOD},
    {"serialize", required_argument, NULL, O_SERIALIZE},
    {"warmup", required_argument, NULL, O_WARMUP},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
  };
  const char *addr = "tcp@127.0.0.1:8972";
  int warmup_set = 0, ch;
  o->concurrency = 10, o->conns = 1, o->n = 100000, o->size = 64, o->timeout = 5;
  o->service = "Echo", o->method = "Echo", o->ser_name = "msgpack";
  o->serialize = MRPC_SERIALIZE_MSGPACK;
  while ((ch = getopt_long(argc, argv, "c:n:d:h", longs, NULL)) != -1) {
    switch (ch) {
    case O_ADDR: addr = optarg; break;
    case 'c': if (parse_u64(optarg, 1, 1000000, &o->concurrency)) return bad("-c", optarg); break;
    case O_CONNS: if (parse_u64(optarg, 1, 100000, &o->conns)) return bad("--conns", optarg); break;
    case 'n': if (parse_u64(optarg, 1, UINT64_MAX / 2, &o->n)) return bad("-n", optarg); break;
    case 'd': if (parse_secs(optarg, &o->duration)) return bad("-d", optarg); break;
    case O_SIZE:
      if (parse_u64(optarg, 0, MRPC_DEFAULT_MAX_FRAME - 4096, &o->size)) return bad("--size", optarg);
      break;
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
    case 'h': usage(stdout); return 1;
    default: return -1;
    }
  }
  if (optind < argc) return bad("argument", argv[optind]);
  if (parse_addr(o, addr) != 0) return bad("--addr", addr);
  if (!warmup_set) o->warmup = o->duration > 0 ? 1000 : (o->n / 100 < 1000 ? o->n / 100 : 1000);
  if (o->conns > o->concurrency) o->conns = o->concurrency; /* no idle sockets */
  return 0;
}

/* ---- report ---- */

static void json_str(FILE *to, const char *s) {
  fputc('"', to);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(to, "\\%c", ch);
    else if (ch < 0x20) fprintf(to, "\\u%04x", ch);
    else fputc(ch, to);
  }
  fputc('"', to);
}

void report(const bench_t *b) {
  const opts_t *o = &b->o;
  double secs = (double)(b->t_end - b->t_start) / 1e9;
  double rps = secs > 0 ? (double)b->counted / secs : 0;
  double q[5] = {hist_quantile(&b->hist, 0.5), hist_quantile(&b->hist, 0.9),
                 hist_quantile(&b->hist, 0.99), hist_quantile(&b->hist, 0.999),
                 (double)b->hist.max};
  for (int i = 0; i < 5; i++) q[i] /= 1e6; /* ns -> ms */
  printf("moonrpc bench: %s %s.%s %s size=%" PRIu64 " c=%" PRIu64 " conns=%" PRIu64 "\n",
         o->addr, o->service, o->method, o->ser_name, o->size, o->concurrency, o->conns);
  printf("requests: %" PRIu64 "  errors: %" PRIu64, b->counted, b->errors);
  if (b->warmup_errors) printf(" (and %" PRIu64 " in warmup)", b->warmup_errors);
  printf("  duration: %.2f s\n", secs);
  printf("throughput: %.0f req/s\n", rps);
  printf("latency: p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
         q[0], q[1], q[2], q[3], q[4]);
  if (!o->json) return;
  printf("{\"addr\":");
  json_str(stdout, o->addr);
  printf(",\"service\":");
  json_str(stdout, o->service);
  printf(",\"method\":");
  json_str(stdout, o->method);
  printf(",\"serialize\":\"%s\",\"size\":%" PRIu64 ",\"concurrency\":%" PRIu64 ",\"conns\":%" PRIu64
         ",\"requests\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"duration_s\":%.6f,\"rps\":%.1f,"
         "\"latency_ms\":{\"p50\":%.6f,\"p90\":%.6f,\"p99\":%.6f,\"p99_9\":%.6f,\"max\":%.6f}",
         o->ser_name, o->size, o->concurrency, o->conns, b->counted, b->errors, secs, rps,
         q[0], q[1], q[2], q[3], q[4]);
  printf(",\"warmup_errors\":%" PRIu64, b->warmup_errors);
  if (b->first_error[0]) {
    printf(",\"first_error\":");
    json_str(stdout, b->first_error);
  }
  printf("}\n");
}

