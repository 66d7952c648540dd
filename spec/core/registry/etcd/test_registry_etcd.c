/* test_registry_etcd.c: the etcd registry backend against a real etcd
 * (spec/fixtures/etcd.sh, started by the ctest fixture in spec/etcd.cmake,
 * which passes its directory in $MOONRPC_ETCD_DIR; without it: skipped).
 *
 * Every callback is counted, so "exactly once" is checked; every wait has
 * a watchdog. The expiry scenario runs this binary again as a child
 * ("--child URL") that registers one instance and is then SIGKILLed. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "moonrpc/registry.h"
#include "check.h"
#include "loop_harness.h"

/* ---- records --------------------------------------------------------------- */

typedef struct {
  int n, status;
} done_t;

static void on_done(int status, void *ud) {
  done_t *d = ud;
  d->n++;
  d->status = status;
}

#define MAXE 8
typedef struct {
  int n, status;
  size_t count;
  char addr[MAXE][64], meta[MAXE][64], service[MAXE][32];
} list_t;

static void on_list(int status, const mrpc_reg_entry_t *l, size_t n, void *ud) {
  list_t *r = ud;
  size_t i;
  r->n++;
  r->status = status;
  r->count = n;
  if (status < 0) CHECK(l == NULL && n == 0);
  for (i = 0; i < n && i < MAXE; i++) {
    snprintf(r->service[i], sizeof r->service[i], "%s", l[i].service);
    snprintf(r->addr[i], sizeof r->addr[i], "%s", l[i].addr);
    snprintf(r->meta[i], sizeof r->meta[i], "%s", l[i].meta);
  }
}

static int has_addr(const list_t *r, const char *addr) {
  size_t i;
  for (i = 0; i < r->count && i < MAXE; i++)
    if (strcmp(r->addr[i], addr) == 0) return 1;
  return 0;
}

/* A watch record: how often it reported, and whether it ever saw `count`
 * entries after `mark` was set. */
typedef struct {
  list_t l;
  int saw_empty;
} watch_rec_t;

static void on_watch(int status, const mrpc_reg_entry_t *l, size_t n, void *ud) {
  watch_rec_t *w = ud;
  CHECK_EQ_INT(status, 0);
  on_list(status, l, n, &w->l);
  if (n == 0) w->saw_empty = 1;
}

/* ---- helpers --------------------------------------------------------------- */

static char addr[64], base[64], url[160];

static mrpc_registry_t *reg_open(const char *u) {
  mrpc_registry_t *r = NULL;
  CHECK_EQ_INT(mrpc_registry_open(&loop, u, &r), 0);
  return r;
}

static void reg_close(mrpc_registry_t *r) {
  done_t d = {0, 0};
  mrpc_registry_close(r, on_done, &d);
  CHECK_EQ_INT(d.n, 0);
  WAIT(d.n == 1);
  CHECK_EQ_INT(d.status, 0);
}

static int do_register(mrpc_registry_t *r, const char *a, const char *meta, unsigned ttl) {
  done_t d = {0, 0};
  CHECK_EQ_INT(mrpc_registry_register(r, "Arith", a, meta, ttl, on_done, &d), 0);
  CHECK_EQ_INT(d.n, 0); /* never from inside the call */
  WAIT(d.n == 1);
  CHECK_EQ_INT(d.n, 1);
  return d.status;
}

static int do_unregister(mrpc_registry_t *r, const char *a) {
  done_t d = {0, 0};
  CHECK_EQ_INT(mrpc_registry_unregister(r, "Arith", a, on_done, &d), 0);
  CHECK_EQ_INT(d.n, 0);
  WAIT(d.n == 1);
  return d.status;
}

static void do_list(mrpc_registry_t *r, list_t *l) {
  memset(l, 0, sizeof *l);
  CHECK_EQ_INT(mrpc_registry_list(r, "Arith", on_list, l), 0);
  CHECK_EQ_INT(l->n, 0);
  WAIT(l->n == 1);
  CHECK_EQ_INT(l->n, 1);
}

/* Runs a shell command; its output (at most len-1 bytes) in out. */
static int run(const char *cmd, char *out, size_t len) {
  FILE *f = popen(cmd, "r");
  size_t n = 0, k;
  if (!f) return -1;
  while (n + 1 < len && (k = fread(out + n, 1, len - 1 - n, f)) > 0) n += k;
  out[n] = 0;
  return pclose(f);
}

/* ---- the child: registers one instance, then waits to be killed ---------- */

static void child_done(int status, void *ud) {
  printf(status == 0 ? "ready\n" : "failed %d\n", status);
  fflush(stdout);
}

static int child_main(const char *u) {
  mrpc_registry_t *r;
  uv_loop_init(&loop);
  if (mrpc_registry_open(&loop, u, &r) != 0) return 1;
  if (mrpc_registry_register(r, "Arith", "tcp@127.0.0.1:9200", "weight=1", 2, child_done, NULL))
    return 1;
  uv_run(&loop, UV_RUN_DEFAULT); /* until SIGKILL */
  return 0;
}

static pid_t spawn_child(int *rfd) {
  int p[2];
  pid_t pid;
  if (pipe(p) != 0) return -1;
  pid = fork();
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execl("/proc/self/exe", "test_registry_etcd", "--child", url, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  *rfd = p[0];
  return pid;
}

/* Reads the child's first line, waiting at most 5 s. */
static int read_line(int fd, char *buf, size_t len) {
  size_t n = 0;
  while (n + 1 < len) {
    fd_set s;
    struct timeval tv = {5, 0};
    FD_ZERO(&s);
    FD_SET(fd, &s);
    if (select(fd + 1, &s, NULL, NULL, &tv) <= 0 || read(fd, buf + n, 1) != 1) break;
    if (buf[n++] == '\n') break;
  }
  buf[n] = 0;
  return (int)n;
}

/* ---- scenarios --------------------------------------------------------------- */

int main(int argc, char **argv) {
  const char *dir = getenv("MOONRPC_ETCD_DIR");
  char path[512], out[4096], expect[512], cmd[1024];
  mrpc_registry_t *r1, *r2, *bad;
  mrpc_watch_t *w = NULL;
  watch_rec_t wr;
  list_t l;
  done_t d1 = {0, 0}, d2 = {0, 0};
  FILE *f;
  int n;

  if (argc >= 3 && strcmp(argv[1], "--child") == 0) return child_main(argv[2]);
  if (!dir) {
    printf("SKIP: MOONRPC_ETCD_DIR is not set (run through ctest)\n");
    return 77;
  }
  snprintf(path, sizeof path, "%s/addr", dir);
  if (!(f = fopen(path, "r")) || !fgets(addr, sizeof addr, f)) {
    printf("SKIP: no etcd address in %s\n", path);
    return 77;
  }
  fclose(f);
  addr[strcspn(addr, "\r\n")] = 0;
  snprintf(base, sizeof base, "moonrpc_test_%d", (int)getpid());
  snprintf(url, sizeof url, "etcd://%s/%s", addr, base);

  harness_start();

  /* 1 */
  CHECK_EQ_INT(mrpc_registry_open(&loop, "etcd://127.0.0.1/x", &bad), MRPC_EADDR);
  CHECK_EQ_INT(mrpc_registry_open(&loop, "etcd:/127.0.0.1:2379/x", &bad), MRPC_EADDR);
  CHECK_EQ_INT(mrpc_registry_open(&loop, "etcdx://127.0.0.1:2379/x", &bad), MRPC_EADDR);
  CHECK_EQ_INT(mrpc_registry_open(&loop, "etcd://no:such:host/x", &bad), MRPC_EADDR);
  report("a bad URL is MRPC_EADDR");

  /* 2 */
  r1 = reg_open(url);
  CHECK(strcmp(mrpc_registry_base(r1), base) == 0);
  CHECK_EQ_INT(mrpc_registry_register(r1, "Arith", "tcp@127.0.0.1:8972", "weight=10&group=a", 2,
                                      on_done, &d1), 0);
  CHECK_EQ_INT(mrpc_registry_register(r1, "Arith", "tcp@127.0.0.1:8973", "weight=20&group=b", 2,
                                      on_done, &d2), 0);
  CHECK(d1.n == 0 && d2.n == 0);
  WAIT(d1.n == 1 && d2.n == 1);
  CHECK_EQ_INT(d1.status, 0);
  CHECK_EQ_INT(d2.status, 0);
  do_list(r1, &l);
  CHECK_EQ_INT(l.status, 0);
  CHECK_EQ_INT(l.count, 2);
  CHECK(strcmp(l.service[0], "Arith") == 0);
  CHECK(strcmp(l.addr[0], "tcp@127.0.0.1:8972") == 0);
  CHECK(strcmp(l.meta[0], "weight=10&group=a") == 0);
  CHECK(strcmp(l.addr[1], "tcp@127.0.0.1:8973") == 0);
  CHECK(strcmp(l.meta[1], "weight=20&group=b") == 0);
  {
    /* "" lists every service under the base path, each entry naming its
     * own service. */
    done_t d3 = {0, -1}, d4 = {0, -1};
    CHECK_EQ_INT(mrpc_registry_register(r1, "Echo", "tcp@127.0.0.1:9999", "x=1", 2, on_done, &d3), 0);
    WAIT(d3.n == 1);
    memset(&l, 0, sizeof l);
    CHECK_EQ_INT(mrpc_registry_list(r1, "", on_list, &l), 0);
    WAIT(l.n > 0);
    CHECK_EQ_INT(l.count, 3);
    CHECK(strcmp(l.service[0], "Arith") == 0 && strcmp(l.addr[0], "tcp@127.0.0.1:8972") == 0);
    CHECK(strcmp(l.service[2], "Echo") == 0 && strcmp(l.addr[2], "tcp@127.0.0.1:9999") == 0);
    CHECK(strcmp(l.meta[2], "x=1") == 0);
    CHECK_EQ_INT(mrpc_registry_unregister(r1, "Echo", "tcp@127.0.0.1:9999", on_done, &d4), 0);
    WAIT(d4.n == 1);
  }
  report("register two instances: list returns both with their metadata; \"\" lists every service");

  /* 3 */
  snprintf(cmd, sizeof cmd, "etcdctl --endpoints %s get --prefix %s/ 2>&1", addr, base);
  CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
  snprintf(expect, sizeof expect,
           "%s/Arith/tcp@127.0.0.1:8972\nweight=10&group=a\n"
           "%s/Arith/tcp@127.0.0.1:8973\nweight=20&group=b\n", base, base);
  if (strcmp(out, expect) != 0) {
    fprintf(stderr, "    etcdctl says:\n%s    expected:\n%s", out, expect);
    cur_failed = 1;
  }
  report("the raw keys and values are rpcx's layout");

  /* 4 */
  memset(&d1, 0, sizeof d1);
  CHECK_EQ_INT(mrpc_registry_update(r1, "Arith", "tcp@127.0.0.1:8973", "weight=30&group=b",
                                    on_done, &d1), 0);
  CHECK_EQ_INT(d1.n, 0);
  WAIT(d1.n == 1);
  CHECK_EQ_INT(d1.status, 0);
  CHECK_EQ_INT(mrpc_registry_update(r1, "Arith", "tcp@127.0.0.1:1", "x", on_done, &d1),
               MRPC_EINVAL);
  do_list(r1, &l);
  CHECK_EQ_INT(l.count, 2);
  CHECK(strcmp(l.meta[1], "weight=30&group=b") == 0);
  report("update replaces the metadata");

  /* 5 */
  memset(&wr, 0, sizeof wr);
  CHECK_EQ_INT(mrpc_registry_watch(r1, "Arith", on_watch, &wr, &w), 0);
  CHECK_EQ_INT(wr.l.n, 0);
  WAIT(wr.l.n >= 1);
  CHECK_EQ_INT(wr.l.count, 2);
  r2 = reg_open(url);
  CHECK_EQ_INT(do_register(r2, "tcp@127.0.0.1:9000", "weight=5", 2), 0);
  WAIT(wr.l.count == 3);
  CHECK(has_addr(&wr.l, "tcp@127.0.0.1:9000"));
  CHECK_EQ_INT(do_unregister(r2, "tcp@127.0.0.1:9000"), 0);
  WAIT(wr.l.count == 2);
  CHECK(!has_addr(&wr.l, "tcp@127.0.0.1:9000"));
  report("watch: the first list, then a new list after each change elsewhere");

  /* 6 */
  CHECK_EQ_INT(do_unregister(r1, "tcp@127.0.0.1:8973"), 0);
  do_list(r2, &l);
  CHECK_EQ_INT(l.count, 1);
  CHECK(!has_addr(&l, "tcp@127.0.0.1:8973"));
  WAIT(wr.l.count == 1);
  report("unregister removes the instance");

  /* 7 */
  {
    int fd = -1, status;
    pid_t pid = spawn_child(&fd);
    char line[64];
    uint64_t t0;
    CHECK(pid > 0);
    if (pid > 0) {
      read_line(fd, line, sizeof line);
      CHECK(strcmp(line, "ready\n") == 0);
      WAIT(wr.l.count == 2 && has_addr(&wr.l, "tcp@127.0.0.1:9200"));
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      close(fd);
      uv_update_time(&loop);
      t0 = uv_now(&loop);
      WAITT(wr.l.count == 1 && !has_addr(&wr.l, "tcp@127.0.0.1:9200"), 5000);
      uv_update_time(&loop);
      fprintf(stderr, "    # expired %llu ms after the kill\n",
              (unsigned long long)(uv_now(&loop) - t0));
      CHECK(uv_now(&loop) - t0 < 3500);
      do_list(r1, &l);
      CHECK_EQ_INT(l.count, 1);
    }
  }
  report("a killed process's instance expires with its lease, and the watch says so");

  /* 8 */
  snprintf(cmd, sizeof cmd,
           "etcdctl --endpoints %s get %s/Arith/tcp@127.0.0.1:8972 -w fields 2>&1 | "
           "sed -n 's/^\"Lease\" : //p'", addr, base);
  run(cmd, out, sizeof out);
  {
    unsigned long long lease = strtoull(out, NULL, 10);
    uint64_t t0;
    CHECK(lease != 0);
    wr.saw_empty = 0;
    snprintf(cmd, sizeof cmd, "etcdctl --endpoints %s lease revoke %llx 2>&1", addr, lease);
    CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    WAIT(wr.saw_empty);
    WAITT(wr.l.count == 1 && has_addr(&wr.l, "tcp@127.0.0.1:8972"), 3000);
    uv_update_time(&loop);
    CHECK(uv_now(&loop) - t0 < 2000); /* within the TTL */
    do_list(r2, &l);
    CHECK_EQ_INT(l.count, 1);
    CHECK(strcmp(l.meta[0], "weight=10&group=a") == 0);
  }
  report("a revoked lease: the keepalive notices and registers again within the TTL");

  /* 9 */
  if (getenv("MOONRPC_ETCD_FIXTURE")) {
    uint64_t t0;
    int before;
    snprintf(cmd, sizeof cmd, "%s pause %s", getenv("MOONRPC_ETCD_FIXTURE"), dir);
    CHECK_EQ_INT(system(cmd), 0);
    before = wr.l.n;
    sleep_ms(1000);
    CHECK_EQ_INT(wr.l.n, before); /* nothing while etcd is away */
    do_list(r2, &l);
    CHECK(l.status < 0);
    snprintf(cmd, sizeof cmd, "%s resume %s", getenv("MOONRPC_ETCD_FIXTURE"), dir);
    CHECK_EQ_INT(system(cmd), 0);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    WAITT(wr.l.n > before, 8000);
    uv_update_time(&loop);
    fprintf(stderr, "    # the watch reported again %llu ms after etcd came back\n",
            (unsigned long long)(uv_now(&loop) - t0));
    WAITT(wr.l.count == 1 && has_addr(&wr.l, "tcp@127.0.0.1:8972"), 8000);
    do_list(r2, &l);
    CHECK_EQ_INT(l.count, 1);
    CHECK(has_addr(&l, "tcp@127.0.0.1:8972"));
  } else {
    fprintf(stderr, "    # skipped: MOONRPC_ETCD_FIXTURE is not set\n");
  }
  report("etcd restarts: the watch is silent while it is away, then reports again");

  /* 10 */
  n = wr.l.n;
  mrpc_registry_unwatch(w);
  CHECK_EQ_INT(do_register(r2, "tcp@127.0.0.1:9001", "", 2), 0);
  CHECK_EQ_INT(do_unregister(r2, "tcp@127.0.0.1:9001"), 0);
  sleep_ms(300);
  CHECK_EQ_INT(wr.l.n, n);
  report("unwatch: the callback is not called again");

  /* 11 */
  CHECK_EQ_INT(do_register(r1, "tcp@127.0.0.1:8974", "weight=1", 5), 0);
  do_list(r2, &l);
  CHECK_EQ_INT(l.count, 2);
  reg_close(r1);
  do_list(r2, &l);
  CHECK_EQ_INT(l.status, 0);
  CHECK_EQ_INT(l.count, 0);
  snprintf(cmd, sizeof cmd, "etcdctl --endpoints %s get --prefix %s/ 2>&1", addr, base);
  CHECK_EQ_INT(run(cmd, out, sizeof out), 0);
  CHECK(out[0] == 0);
  reg_close(r2);
  report("close unregisters everything it registered");

  /* 12 */
  bad = reg_open("etcd://127.0.0.1:1/moonrpc_down");
  if (bad) {
    int st = do_register(bad, "tcp@127.0.0.1:8972", "weight=1", 2);
    CHECK(st < 0);
    fprintf(stderr, "    # register: %s\n", mrpc_err_name(st));
    do_list(bad, &l);
    CHECK(l.status < 0);
    sleep_ms(500); /* a few retries in the background */
    reg_close(bad);
  }
  report("etcd down: register and list report an error, close still works");

  /* 13: no handle left behind (drain), then the loop closes */
  drain();
  return harness_finish();
}
