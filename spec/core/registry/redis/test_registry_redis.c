/* test_registry_redis.c: the Redis registry backend against a real
 * redis-server (the ctest fixture spec/fixtures/redis.sh writes its address
 * to $MOONRPC_REDIS_DIR/addr; without it the test skips, exit 77).
 *
 * Scenarios: register + list, the raw key layout and TTL (read back with
 * redis-cli), refresh, update, watch (from a second registry object),
 * unregister, expiry of a SIGKILLed process's instance (this binary re-run
 * in a helper mode), a redis restart on the same port, close deleting
 * everything, a bad URL, and a port where nothing listens; and,
 * without the server, the libkv value format and the glob escaping
 * (redis_format.c, pure functions). Every callback is counted: "exactly
 * once" is checked, not assumed. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "moonrpc.h"
#define REG_TTL 2
#include "registry/registry_harness.h"
#include <cjson/cJSON.h>
#include "registry/redis/redis.h" /* the pure value format, tested alone */

/* ---- the server --------------------------------------------------------- */

static char dir[512], addr[64], base[64], url[160], sh[512];
static int port;

/* Runs redis-cli with `args`; its output, trimmed, in `out`. */
static void rcli(char *out, size_t len, const char *fmt, ...) {
  char args[512], cmd[700];
  size_t n;
  va_list ap;
  FILE *p;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d %s 2>/dev/null", port, args);
  out[0] = 0;
  if (!(p = popen(cmd, "r"))) return;
  n = fread(out, 1, len - 1, p);
  out[n] = 0;
  pclose(p);
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r')) out[--n] = 0;
}

static int read_file(const char *name, char *out, size_t len) {
  char path[600];
  FILE *f;
  size_t n;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (!(f = fopen(path, "r"))) return -1;
  n = fread(out, 1, len - 1, f);
  fclose(f);
  out[n] = 0;
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ')) out[--n] = 0;
  return 0;
}


/* ---- scenarios ---------------------------------------------------------- */

static mrpc_registry_t *r1, *r2;
static mrpc_watch_t *w1;
static lst_t wl; /* what the watch reported last */

static void t_bad_url(void) {
  mrpc_registry_t *r = NULL;
  CHECK_EQ_INT(mrpc_registry_open(&loop, "redis://127.0.0.1/base", &r), MRPC_EADDR);
  CHECK_EQ_INT(mrpc_registry_open(&loop, "redis:/127.0.0.1:6379/base", &r), MRPC_EADDR);
  CHECK_EQ_INT(mrpc_registry_open(&loop, "rediss://127.0.0.1:6379/base", &r), MRPC_EADDR);
  CHECK(r == NULL);
  report("a bad URL is MRPC_EADDR");
}

static void t_register_list(void) {
  lst_t l;
  r1 = reg_open(url);
  CHECK(strcmp(mrpc_registry_base(r1), base) == 0);
  CHECK_EQ_INT(reg(r1, "tcp@127.0.0.1:8972", "weight=10&group=a"), 0);
  CHECK_EQ_INT(reg(r1, "tcp@127.0.0.1:8973", "weight=20&group=b"), 0);
  list(r1, &l);
  CHECK_EQ_INT(l.status, 0);
  CHECK_EQ_INT(l.count, 2);
  CHECK(meta_of(&l, "tcp@127.0.0.1:8972") && strcmp(meta_of(&l, "tcp@127.0.0.1:8972"), "weight=10&group=a") == 0);
  CHECK(meta_of(&l, "tcp@127.0.0.1:8973") && strcmp(meta_of(&l, "tcp@127.0.0.1:8973"), "weight=20&group=b") == 0);
  /* "" lists every service under the base path; the entries name theirs
   * (on_list checks that it is Arith). */
  memset(&l, 0, sizeof l);
  in_call = 1;
  CHECK_EQ_INT(mrpc_registry_list(r1, "", on_list, &l), 0);
  in_call = 0;
  WAIT(l.n > 0);
  CHECK_EQ_INT(l.status, 0);
  CHECK_EQ_INT(l.count, 2);
  CHECK(meta_of(&l, "tcp@127.0.0.1:8973") != NULL);
  report("register two instances, list returns both; \"\" lists every service");
}

static void t_layout(void) {
  char out[1024];
  rcli(out, sizeof out, "--scan --pattern '%s/*'", base);
  CHECK(strstr(out, "/Arith/tcp@127.0.0.1:8972") != NULL);
  CHECK(strstr(out, "/Arith/tcp@127.0.0.1:8973") != NULL);
  /* rpcx's Redis plugin writes through libkv: the JSON of a KVPair with
   * the metadata in base64; Go rpcx clients read ours. */
  rcli(out, sizeof out, "GET '%s/Arith/tcp@127.0.0.1:8972'", base);
  if (!strstr(out, "\"Value\":\"d2VpZ2h0PTEwJmdyb3VwPWE=\"")) fprintf(stderr, "    GET: %s\n", out);
  CHECK(strstr(out, "\"Value\":\"d2VpZ2h0PTEwJmdyb3VwPWE=\"") != NULL); /* weight=10&group=a */
  CHECK(strstr(out, "\"Key\":\"") != NULL && strstr(out, "/Arith/tcp@127.0.0.1:8972\"") != NULL);
  CHECK(strstr(out, "\"LastIndex\":") != NULL);
  rcli(out, sizeof out, "TTL '%s/Arith/tcp@127.0.0.1:8972'", base);
  CHECK(atoi(out) > 0 && atoi(out) <= 2);
  report("the keys are base/Arith/tcp@host:port = meta, with a TTL");
}

static void t_refresh(void) {
  char out[256];
  lst_t l;
  sleep_ms(3000); /* past the TTL: only the refresh keeps the keys */
  rcli(out, sizeof out, "TTL '%s/Arith/tcp@127.0.0.1:8973'", base);
  CHECK(atoi(out) > 0);
  list(r1, &l);
  CHECK_EQ_INT(l.count, 2);
  report("the registry refreshes its keys before the TTL runs out");
}

/* redis_format.c's pure functions: a libkv value reads back as the
 * metadata written; a plain value, broken JSON or an object without a
 * string "Value" is not a libkv value; a null "Value" is empty metadata. */
static void t_format(void) {
  char *v = mrpc__redis_libkv_value("b/S/tcp@h:1", "weight=7&group=go", 77), *m;
  CHECK(v && strcmp(v, "{\"Key\":\"b/S/tcp@h:1\",\"Value\":\"d2VpZ2h0PTcmZ3JvdXA9Z28=\","
                  "\"LastIndex\":77}") == 0);
  m = v ? mrpc__redis_libkv_meta(v, strlen(v)) : NULL;
  CHECK(m && strcmp(m, "weight=7&group=go") == 0);
  free(m);
  cJSON_free(v);
  CHECK(mrpc__redis_libkv_meta("weight=1", 8) == NULL);
  CHECK(mrpc__redis_libkv_meta("{\"Value\":", 9) == NULL);
  CHECK(mrpc__redis_libkv_meta("{\"Value\":3}", 11) == NULL);
  CHECK(mrpc__redis_libkv_meta("", 0) == NULL);
  m = mrpc__redis_libkv_meta("{\"Value\":null}", 14);
  CHECK(m && strcmp(m, "") == 0);
  free(m);
  m = mrpc__redis_glob_escape("h:", "a*b?[c]\\", "*");
  CHECK(m && strcmp(m, "h:a\\*b\\?\\[c\\]\\\\*") == 0);
  free(m);
  report("the libkv value format and glob escaping");
}

static void t_foreign_values(void) {
  char out[256];
  lst_t l;
  /* As Go rpcx's plugin writes it (its Key has the leading slash of a Go
   * base path), and a plain value as older writers left it. */
  rcli(out, sizeof out, "SET '%s/Arith/tcp@10.0.0.1:1' "
       "'{\"Key\":\"/%s/Arith/tcp@10.0.0.1:1\",\"Value\":\"d2VpZ2h0PTcmZ3JvdXA9Z28=\",\"LastIndex\":77}' EX 30",
       base, base);
  rcli(out, sizeof out, "SET '%s/Arith/tcp@10.0.0.2:2' 'weight=1&plain=1' EX 30", base);
  list(r1, &l);
  CHECK(meta_of(&l, "tcp@10.0.0.1:1") && strcmp(meta_of(&l, "tcp@10.0.0.1:1"), "weight=7&group=go") == 0);
  CHECK(meta_of(&l, "tcp@10.0.0.2:2") && strcmp(meta_of(&l, "tcp@10.0.0.2:2"), "weight=1&plain=1") == 0);
  rcli(out, sizeof out, "DEL '%s/Arith/tcp@10.0.0.1:1' '%s/Arith/tcp@10.0.0.2:2'", base, base);
  report("reads Go rpcx's libkv values and plain ones");
}

static void t_update(void) {
  done_t d = {0, -1};
  lst_t l;
  char out[256];
  in_call = 1;
  CHECK_EQ_INT(mrpc_registry_update(r1, "Arith", "tcp@127.0.0.1:8972", "weight=30&group=a",
                                    on_done, &d), 0);
  in_call = 0;
  WAIT(d.n > 0);
  CHECK_EQ_INT(d.n, 1);
  CHECK_EQ_INT(d.status, 0);
  list(r1, &l);
  CHECK(meta_of(&l, "tcp@127.0.0.1:8972") && strcmp(meta_of(&l, "tcp@127.0.0.1:8972"), "weight=30&group=a") == 0);
  rcli(out, sizeof out, "TTL '%s/Arith/tcp@127.0.0.1:8972'", base);
  CHECK(atoi(out) > 0);
  CHECK_EQ_INT(mrpc_registry_update(r1, "Arith", "tcp@127.0.0.1:1", "x", on_done, &d),
               MRPC_EINVAL);
  report("update replaces the metadata, keeping the TTL");
}

static void t_watch(void) {
  done_t d = {0, -1};
  int seen;
  in_call = 1;
  CHECK_EQ_INT(mrpc_registry_watch(r1, "Arith", on_list, &wl, &w1), 0);
  in_call = 0;
  CHECK_EQ_INT(wl.n, 0);
  WAIT(wl.n > 0);
  CHECK_EQ_INT(wl.status, 0);
  CHECK_EQ_INT(wl.count, 2);
  r2 = reg_open(url);
  seen = wl.n;
  CHECK_EQ_INT(reg(r2, "tcp@127.0.0.1:9000", "weight=5"), 0);
  WAIT(wl.n > seen && meta_of(&wl, "tcp@127.0.0.1:9000"));
  CHECK_EQ_INT(wl.count, 3);
  seen = wl.n;
  CHECK_EQ_INT(mrpc_registry_unregister(r2, "Arith", "tcp@127.0.0.1:9000", on_done, &d), 0);
  WAIT(d.n > 0);
  CHECK_EQ_INT(d.status, 0);
  WAIT(wl.n > seen && !meta_of(&wl, "tcp@127.0.0.1:9000"));
  CHECK_EQ_INT(wl.count, 2);
  /* Refreshes change nothing: the watch stays quiet. */
  seen = wl.n;
  sleep_ms(1500);
  CHECK_EQ_INT(wl.n, seen);
  report("watch: the initial list, then a change made by another registry");
}

static void t_unregister(void) {
  done_t d = {0, -1};
  lst_t l;
  int seen = wl.n;
  in_call = 1;
  CHECK_EQ_INT(mrpc_registry_unregister(r1, "Arith", "tcp@127.0.0.1:8973", on_done, &d), 0);
  in_call = 0;
  WAIT(d.n > 0);
  CHECK_EQ_INT(d.n, 1);
  CHECK_EQ_INT(d.status, 0);
  list(r1, &l);
  CHECK_EQ_INT(l.count, 1);
  CHECK(!meta_of(&l, "tcp@127.0.0.1:8973"));
  WAIT(wl.n > seen && wl.count == 1);
  CHECK(meta_of(&wl, "tcp@127.0.0.1:8972") != NULL);
  sleep_ms(2500); /* it is not refreshed back */
  list(r1, &l);
  CHECK_EQ_INT(l.count, 1);
  report("unregister removes the instance; the watch reports it");
}

static void t_expiry(void) {
  int fds[2], seen;
  pid_t pid;
  char buf[32] = {0};
  struct pollfd pf;
  ssize_t n = 0;
  uint64_t t0;
  CHECK_EQ_INT(pipe(fds), 0);
  pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execl("/proc/self/exe", "test_registry_redis", "--helper", url, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  pf.fd = fds[0];
  pf.events = POLLIN;
  if (poll(&pf, 1, 5000) == 1) n = read(fds[0], buf, sizeof buf - 1);
  CHECK(n > 0 && strncmp(buf, "ready", 5) == 0);
  seen = wl.n;
  WAIT(wl.n > seen && meta_of(&wl, "tcp@127.0.0.1:9100"));
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  close(fds[0]);
  seen = wl.n;
  t0 = uv_now(&loop);
  WAITT(wl.n > seen && !meta_of(&wl, "tcp@127.0.0.1:9100"), 4000);
  CHECK(uv_now(&loop) - t0 <= 3500);
  CHECK_EQ_INT(wl.count, 1);
  report("a killed process's instance expires; the watch reports it");
}

static int alive(pid_t pid) {
  char path[64], st[512], *p;
  FILE *f;
  if (kill(pid, 0) != 0) return 0;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  if (!(f = fopen(path, "r"))) return 0;
  st[fread(st, 1, sizeof st - 1, f)] = 0;
  fclose(f);
  p = strrchr(st, ')');
  return !(p && p[1] == ' ' && p[2] == 'Z');
}

static void t_restart(void) {
  char cmd[1200], pidbuf[32], out[256];
  pid_t pid;
  int seen, i;
  CHECK_EQ_INT(read_file("pid", pidbuf, sizeof pidbuf), 0);
  pid = (pid_t)atoi(pidbuf);
  CHECK(pid > 0);
  if (pid > 0) kill(pid, SIGTERM);
  for (i = 0; i < 100 && pid > 0 && alive(pid); i++) usleep(50000);
  CHECK(!alive(pid));
  seen = wl.n;
  sleep_ms(800); /* the registry and the watch see it go, and retry */
  CHECK_EQ_INT(wl.n, seen); /* while away: nothing reported */
  snprintf(cmd, sizeof cmd, "'%s' start '%s' %d >/dev/null", sh, dir, port);
  CHECK_EQ_INT(system(cmd), 0);
  /* The new server is empty: the registry registers again, the watch
   * resubscribes and reports the list. */
  WAITT(wl.n > seen && meta_of(&wl, "tcp@127.0.0.1:8972"), 8000);
  CHECK_EQ_INT(wl.count, 1);
  rcli(out, sizeof out, "GET '%s/Arith/tcp@127.0.0.1:8972'", base);
  CHECK(strstr(out, "\"Value\":\"d2VpZ2h0PTMwJmdyb3VwPWE=\"") != NULL); /* weight=30&group=a */
  report("redis restarts: instances registered again, the watch reports again");
}

static void t_close(void) {
  char out[1024];
  CHECK_EQ_INT(reg(r1, "tcp@127.0.0.1:8974", "weight=1"), 0);
  reg_close(r2);
  mrpc_registry_unwatch(w1);
  reg_close(r1);
  r1 = r2 = NULL;
  rcli(out, sizeof out, "--scan --pattern '%s/*'", base);
  if (out[0]) fprintf(stderr, "    left: %s\n", out);
  CHECK(out[0] == 0);
  report("close deletes every instance it registered");
}

static void t_close_watching(void) {
  mrpc_registry_t *r = reg_open(url);
  mrpc_watch_t *w;
  lst_t l;
  memset(&l, 0, sizeof l);
  CHECK_EQ_INT(mrpc_registry_watch(r, "Arith", on_list, &l, &w), 0);
  WAIT(l.n > 0);
  CHECK_EQ_INT(l.count, 0);
  reg_close(r); /* stops the watch */
  report("close stops a live watch");
}

static void t_refused(void) {
  mrpc_registry_t *r = reg_open("redis://127.0.0.1:1/refused");
  done_t d = {0, 0};
  lst_t l;
  in_call = 1;
  CHECK_EQ_INT(mrpc_registry_register(r, "Arith", "tcp@127.0.0.1:1", "", 2, on_done, &d), 0);
  in_call = 0;
  WAIT(d.n > 0);
  CHECK_EQ_INT(d.n, 1);
  CHECK(d.status < 0);
  memset(&l, 0, sizeof l);
  CHECK_EQ_INT(mrpc_registry_list(r, "Arith", on_list, &l), 0);
  WAIT(l.n > 0);
  CHECK_EQ_INT(l.n, 1);
  CHECK(l.status < 0);
  reg_close(r);
  CHECK_EQ_INT(d.n, 1);
  report("nothing listening: the error reaches the callback, no hang");
}

/* A peer that accepts and at once closes (Redis at maxclients, a proxy
 * without a backend): the registry backs off as for a refused connection,
 * instead of reconnecting in a loop. */
static int drop_accepts;

static void free_handle(uv_handle_t *h) { free(h); }

static void on_drop_conn(uv_stream_t *srv, int status) {
  uv_tcp_t *c = malloc(sizeof *c);
  if (status < 0 || !c) {
    free(c);
    return;
  }
  uv_tcp_init(&loop, c);
  if (uv_accept(srv, (uv_stream_t *)c) == 0) drop_accepts++;
  uv_close((uv_handle_t *)c, free_handle);
}

static void t_dropping_peer(void) {
  uv_tcp_t srv;
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  int len = sizeof ss, closed = 0;
  char u[128];
  mrpc_registry_t *r;
  done_t d = {0, 0};
  uv_tcp_init(&loop, &srv);
  srv.data = &closed;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  CHECK_EQ_INT(uv_tcp_bind(&srv, (const struct sockaddr *)&sa, 0), 0);
  CHECK_EQ_INT(uv_listen((uv_stream_t *)&srv, 64, on_drop_conn), 0);
  uv_tcp_getsockname(&srv, (struct sockaddr *)&ss, &len);
  snprintf(u, sizeof u, "redis://127.0.0.1:%d/dropping",
           ntohs(((struct sockaddr_in *)&ss)->sin_port));
  drop_accepts = 0;
  r = reg_open(u);
  CHECK_EQ_INT(mrpc_registry_register(r, "Arith", "tcp@127.0.0.1:1", "", 2, on_done, &d), 0);
  sleep_ms(2000);
  /* Backoff 0.2, 0.4, 0.8 s...: a handful, where a loop made hundreds. */
  if (drop_accepts > 12) fprintf(stderr, "    %d connections in 2 s\n", drop_accepts);
  CHECK(drop_accepts >= 2 && drop_accepts <= 12);
  reg_close(r);
  CHECK_EQ_INT(d.n, 1);
  uv_close((uv_handle_t *)&srv, NULL);
  sleep_ms(0);
  report("a peer that accepts and drops: reconnects back off, no storm");
}

int main(int argc, char **argv) {
  const char *d = getenv("MOONRPC_REDIS_DIR"), *s = getenv("MOONRPC_REDIS_SH");
  char *colon;
  if (argc >= 3 && strcmp(argv[1], "--helper") == 0) return helper(argv[2]);
  if (!d || !s) {
    printf("SKIP: MOONRPC_REDIS_DIR / MOONRPC_REDIS_SH not set (run through ctest)\n");
    return 77;
  }
  snprintf(dir, sizeof dir, "%s", d);
  snprintf(sh, sizeof sh, "%s", s);
  if (read_file("addr", addr, sizeof addr) != 0 || !(colon = strrchr(addr, ':'))) {
    printf("SKIP: no redis address in %s/addr\n", dir);
    return 77;
  }
  port = atoi(colon + 1);
  snprintf(base, sizeof base, "moonrpc_test_%d", (int)getpid());
  snprintf(url, sizeof url, "redis://%s/%s", addr, base);

  harness_start();

  t_format();
  t_bad_url();
  t_register_list();
  t_layout();
  t_refresh();
  t_foreign_values();
  t_update();
  t_watch();
  t_unregister();
  t_expiry();
  t_restart();
  t_close();
  t_close_watching();
  t_refused();
  t_dropping_peer();

  if (r1) reg_close(r1);
  if (r2) reg_close(r2);
  drain();
  return harness_finish();
}
