/* bench_report.c: what moonrpc-bench reports: the CPU cost per call (read
 * from /proc and getrusage around the measured window), the table with one
 * row per run, and one JSON object per run. */
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

/* ---- CPU ---- */

/* utime and stime of process `pid`, all its threads, in microseconds:
 * fields 14 and 15 of /proc/PID/stat, in clock ticks. The second field (the
 * command) is in parentheses and may hold spaces, so counting starts after
 * the last ')'. Returns 0, or -1 with errno set. */
int cpu_read_pid(int pid, uint64_t *user_us, uint64_t *sys_us) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long long ut, st;
  /* After ')': state (field 3), then fields 4..13, then utime, stime. */
  if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
    errno = EINVAL;
    return -1;
  }
  long tck = sysconf(_SC_CLK_TCK);
  if (tck <= 0) tck = 100;
  *user_us = ut * 1000000ull / (unsigned long long)tck;
  *sys_us = st * 1000000ull / (unsigned long long)tck;
  return 0;
}

static uint64_t tv_us(struct timeval tv) {
  return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* Samples the --server-pid processes and this process (all threads). */
void cpu_sample(const opts_t *o, cpu_sample_t *s) {
  struct rusage ru;
  memset(s, 0, sizeof *s);
  if (getrusage(RUSAGE_SELF, &ru) == 0) {
    s->client_user = tv_us(ru.ru_utime);
    s->client_sys = tv_us(ru.ru_stime);
  }
  s->server_ok = o->npids > 0;
  for (int i = 0; i < o->npids; i++) {
    uint64_t u, k;
    if (cpu_read_pid(o->pids[i], &u, &k) != 0) {
      s->server_ok = 0;
      break;
    }
    s->server_user += u;
    s->server_sys += k;
  }
}

/* Fills r's CPU per call from the samples around the measured window. */
void result_cpu(result_t *r, const cpu_sample_t *a, const cpu_sample_t *b) {
  double calls = r->counted ? (double)r->counted : 1;
  r->client_user_us = (double)(b->client_user - a->client_user) / calls;
  r->client_sys_us = (double)(b->client_sys - a->client_sys) / calls;
  r->server_cpu = a->server_ok && b->server_ok && r->counted > 0;
  if (r->server_cpu) {
    r->server_user_us = (double)(b->server_user - a->server_user) / calls;
    r->server_sys_us = (double)(b->server_sys - a->server_sys) / calls;
  }
}

/* ---- table ---- */

const char *report_size(uint64_t n, char *buf, size_t len) {
  if (n >= 1048576 && n % 1048576 == 0) snprintf(buf, len, "%" PRIu64 "MiB", n / 1048576);
  else if (n >= 1024 && n % 1024 == 0) snprintf(buf, len, "%" PRIu64 "KiB", n / 1024);
  else snprintf(buf, len, "%" PRIu64, n);
  return buf;
}

void report_header(FILE *to, const opts_t *o) {
  fprintf(to, "moonrpc bench: %s %s.%s %s, ", o->addr, o->service, o->method, o->ser_name);
  if (o->duration > 0) fprintf(to, "%g s per run and worker\n", o->duration);
  else fprintf(to, "%" PRIu64 " requests per run\n", o->n);
  fprintf(to, "%8s %6s %6s %7s %10s %8s %8s %8s %8s %8s %8s %7s  %s\n", "size", "c", "conns",
          "workers", "req/s", "MB/s", "p50", "p90", "p99", "p999", "max", "errors",
          "cpu us/call: server usr+sys, client usr+sys");
}

/* One row; latencies in ms, MB = 10^6 bytes of payload one way. */
void report_row(FILE *to, const opts_t *o, const result_t *r) {
  char sz[32], srv[64];
  if (r->server_cpu) snprintf(srv, sizeof srv, "%.2f+%.2f", r->server_user_us, r->server_sys_us);
  else snprintf(srv, sizeof srv, "-");
  fprintf(to, "%8s %6" PRIu64 " %6" PRIu64 " %7d %10.0f %8.2f %8.3f %8.3f %8.3f %8.3f %8.3f %7" PRIu64
          "  %s, %.2f+%.2f\n",
          report_size(r->size, sz, sizeof sz), o->concurrency, o->conns, o->workers, r->rps,
          r->mb_per_s, r->lat_ms[0], r->lat_ms[1], r->lat_ms[2], r->lat_ms[3], r->lat_ms[4],
          r->errors, srv, r->client_user_us, r->client_sys_us);
  if (r->warmup_errors)
    fprintf(to, "%8s (and %" PRIu64 " errors in warmup)\n", "", r->warmup_errors);
  if (r->first_error[0]) fprintf(to, "%8s first error: %s\n", "", r->first_error);
  if (r->rss.n)
    fprintf(to, "%8s server rss KiB: first after warm-up %.0f, max %.0f, last %.0f, growth %+.0f"
            " (%" PRIu64 " samples)\n", "", r->rss.first, r->rss.max, r->rss.last,
            r->rss.last - r->rss.first, r->rss.n);
  if (r->lua.n) {
    char before[32] = "-";
    if (r->lua_before >= 0) snprintf(before, sizeof before, "%.1f", r->lua_before);
    fprintf(to, "%8s lua memory KiB: before %s, first after warm-up %.1f, max %.1f, after %.1f,"
            " growth %+.1f (%" PRIu64 " samples)\n", "", before, r->lua.first, r->lua.max,
            r->lua.last, r->lua.last - r->lua.first, r->lua.n);
  }
}

/* ---- JSON ---- */

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

/* One object on one line; the field names of the single-run days stay. */
void report_json(FILE *to, const opts_t *o, const result_t *r) {
  fprintf(to, "{\"addr\":");
  json_str(to, o->addr);
  fprintf(to, ",\"service\":");
  json_str(to, o->service);
  fprintf(to, ",\"method\":");
  json_str(to, o->method);
  fprintf(to, ",\"serialize\":\"%s\",\"size\":%" PRIu64 ",\"concurrency\":%" PRIu64 ",\"conns\":%" PRIu64
          ",\"workers\":%d,\"requests\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"duration_s\":%.6f,"
          "\"rps\":%.1f,\"mb_per_s\":%.3f,"
          "\"latency_ms\":{\"p50\":%.6f,\"p90\":%.6f,\"p99\":%.6f,\"p99_9\":%.6f,\"max\":%.6f}",
          o->ser_name, r->size, o->concurrency, o->conns, o->workers, r->counted, r->errors,
          r->secs, r->rps, r->mb_per_s, r->lat_ms[0], r->lat_ms[1], r->lat_ms[2], r->lat_ms[3],
          r->lat_ms[4]);
  fprintf(to, ",\"warmup_errors\":%" PRIu64, r->warmup_errors);
  if (r->server_cpu)
    fprintf(to, ",\"server_user_us_per_call\":%.4f,\"server_sys_us_per_call\":%.4f",
            r->server_user_us, r->server_sys_us);
  else
    fprintf(to, ",\"server_user_us_per_call\":null,\"server_sys_us_per_call\":null");
  fprintf(to, ",\"client_user_us_per_call\":%.4f,\"client_sys_us_per_call\":%.4f",
          r->client_user_us, r->client_sys_us);
  if (r->rss.n)
    fprintf(to, ",\"server_rss_kib\":{\"first\":%.0f,\"max\":%.0f,\"last\":%.0f,\"growth\":%.0f,"
            "\"samples\":%" PRIu64 "}", r->rss.first, r->rss.max, r->rss.last,
            r->rss.last - r->rss.first, r->rss.n);
  else
    fprintf(to, ",\"server_rss_kib\":null");
  if (r->lua.n) {
    fprintf(to, ",\"lua_memory_kib\":{\"before\":");
    if (r->lua_before >= 0) fprintf(to, "%.1f", r->lua_before);
    else fprintf(to, "null");
    fprintf(to, ",\"first\":%.1f,\"max\":%.1f,\"after\":%.1f,\"growth\":%.1f,\"samples\":%" PRIu64 "}",
            r->lua.first, r->lua.max, r->lua.last, r->lua.last - r->lua.first, r->lua.n);
  } else {
    fprintf(to, ",\"lua_memory_kib\":null");
  }
  if (r->first_error[0]) {
    fprintf(to, ",\"first_error\":");
    json_str(to, r->first_error);
  }
  fprintf(to, "}\n");
  fflush(to);
}
