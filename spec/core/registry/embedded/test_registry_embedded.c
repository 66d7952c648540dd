/* test_registry_embedded.c: the embedded registry (mrpc_regsrv_*) and its
 * client, the moonrpc:// backend, on one loop over loopback; no external
 * server is needed.
 *
 * Scenarios: register + list, the protocol as a plain rpcx client sees it
 * (JSON, rpcx's layout), keepalive past the TTL, update, watch by server
 * push (a change made through a second registry object), unregister,
 * expiry of a SIGKILLed process's instance (this binary re-run in a helper
 * mode), a registry restart on the same port (instances registered again,
 * watches re-established, nothing reported while it is away), close
 * unregistering everything, bad requests answered with clear errors, the
 * max_entries and max_watches limits, a bad URL and a port where nothing
 * listens. Every callback is counted: "exactly once" is checked. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "moonrpc.h"
#define REG_TTL 1
#include "registry/registry_harness.h"


/* ---- the registry server, in process ------------------------------------ */

static mrpc_server_t *srv;
static mrpc_regsrv_t *rs;
static char srv_addr[64], url[160];

static void quiet(void *ud, int level, const char *msg) { (void)ud; (void)level; (void)msg; }

static void on_srv_closed(mrpc_server_t *s, void *ud) { (void)s; (*(int *)ud)++; }

static void rs_start(const char *listen, const mrpc_regsrv_opts_t *o) {
  mrpc_server_opts_t so;
  memset(&so, 0, sizeof so);
  so.log = quiet;
  CHECK_EQ_INT(mrpc_server_new(&loop, &so, &srv), 0);
  CHECK_EQ_INT(mrpc_regsrv_new(&loop, srv, o, &rs), 0);
  CHECK_EQ_INT(mrpc_server_listen(srv, "tcp", listen), 0);
  CHECK_EQ_INT(mrpc_server_address(srv, 0, srv_addr, sizeof srv_addr), 0);
}

static void rs_stop(void) {
  done_t d = {0, -1};
  int closed = 0;
  mrpc_regsrv_close(rs, on_done, &d);
  mrpc_server_close(srv, on_srv_closed, &closed);
  WAIT(d.n == 1 && closed == 1);
  CHECK_EQ_INT(d.n, 1);
  rs = NULL;
  srv = NULL;
}


/* ---- a plain rpcx client speaking the protocol ----------------------------- */

typedef struct raw_s {
  int n, status, remote;
  char text[2048];
} raw_t;

static void on_raw(int status, const mrpc_frame_t *f, void *ud) {
  raw_t *r = ud;
  size_t n;
  const char *e;
  r->n++;
  r->status = status;
  if (status < 0) return;
  r->remote = mrpc_frame_status(f) == MRPC_STATUS_ERROR;
  if (r->remote && (e = mrpc_frame_error(f, &n)))
    snprintf(r->text, sizeof r->text, "%.*s", (int)n, e);
  else
    snprintf(r->text, sizeof r->text, "%.*s", (int)f->payload_len, f->payload);
}

static void raw_call(mrpc_client_t *c, const char *method, const char *json, int ser, raw_t *r) {
  mrpc_call_args_t a;
  memset(&a, 0, sizeof a);
  memset(r, 0, sizeof *r);
  a.service = "Registry";
  a.method = method;
  a.payload = json;
  a.payload_len = strlen(json);
  a.serialize = (uint8_t)ser;
  a.timeout_ms = 2000;
  CHECK_EQ_INT(mrpc_client_call(c, &a, on_raw, r, NULL), 0);
  WAIT(r->n > 0);
  CHECK_EQ_INT(r->n, 1);
}

static void on_cli_closed(mrpc_client_t *c, void *ud) { (void)c; (*(int *)ud)++; }

static void cli_close(mrpc_client_t *c) {
  int closed = 0;
  mrpc_client_close(c, on_cli_closed, &closed);
  WAIT(closed == 1);
}


/* ---- scenarios -------------------------------------------------------------- */

static mrpc_registry_t *r1, *r2;
static mrpc_watch_t *w1;
static lst_t wl;

static void t_bad_url(void) {
  mrpc_registry_t *r = NULL;
  CHECK_EQ_INT(mrpc_registry_open(&loop, "moonrpc://127.0.0.1", &r), MRPC_EADDR);
  CHECK_EQ_INT(mrpc_registry_open(&loop, "moonrpcx://127.0.0.1:9000", &r), MRPC_EADDR);
  CHECK(r == NULL);
  r = reg_open("moonrpc://127.0.0.1:9000");
  CHECK(r && strcmp(mrpc_registry_base(r), "rpcx") == 0); /* rpcx's default */
  reg_close(r);
  report("a bad URL is MRPC_EADDR; no base path means rpcx's \"rpcx\"");
}

static void t_register_list(void) {
  lst_t l;
  r1 = reg_open(url);
  CHECK_EQ_INT(reg(r1, "tcp@127.0.0.1:8972", "weight=10&group=a"), 0);
  CHECK_EQ_INT(reg(r1, "tcp@127.0.0.1:8973", "weight=20&group=b"), 0);
  CHECK_EQ_INT(mrpc_regsrv_count(rs), 2);
  list(r1, &l);
  CHECK_EQ_INT(l.status, 0);
  CHECK_EQ_INT(l.count, 2);
  CHECK(meta_of(&l, "tcp@127.0.0.1:8972") && strcmp(meta_of(&l, "tcp@127.0.0.1:8972"), "weight=10&group=a") == 0);
  CHECK(meta_of(&l, "tcp@127.0.0.1:8973") && strcmp(meta_of(&l, "tcp@127.0.0.1:8973"), "weight=20&group=b") == 0);
  CHECK_EQ_INT(mrpc_registry_register(r1, "Arith", "tcp@127.0.0.1:8972", "", 1, on_done, NULL),
               MRPC_EBUSY); /* already registered through this object */
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

static void t_protocol(void) {
  mrpc_client_t *c = NULL;
  raw_t r;
  CHECK_EQ_INT(mrpc_client_new(&loop, srv_addr, NULL, &c), 0);
  raw_call(c, "List", "{\"base\":\"/mtest/\",\"service\":\"Arith\"}", MRPC_SERIALIZE_JSON, &r);
  CHECK_EQ_INT(r.remote, 0);
  CHECK(strstr(r.text, "{\"service\":\"Arith\",\"addr\":\"tcp@127.0.0.1:8972\",\"meta\":\"weight=10&group=a\"}") != NULL);
  raw_call(c, "List", "{\"base\":\"mtest\"}", MRPC_SERIALIZE_JSON, &r); /* every service */
  CHECK(strstr(r.text, "tcp@127.0.0.1:8973") != NULL);
  raw_call(c, "List", "{\"base\":\"other\"}", MRPC_SERIALIZE_JSON, &r);
  CHECK(strcmp(r.text, "{\"instances\":[]}") == 0);
  raw_call(c, "List", "{not json", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strcmp(r.text, "registry: the payload must be a JSON object") == 0);
  raw_call(c, "List", "[1,2]", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strstr(r.text, "JSON object") != NULL);
  /* msgpack (rpcx Go's default codec) in, msgpack out: {base = "mtest",
   * service = "Arith"} -> {instances = [...]} */
  raw_call(c, "List", "\x82\xa4" "base\xa5" "mtest\xa7" "service\xa5" "Arith",
           MRPC_SERIALIZE_MSGPACK, &r);
  CHECK(!r.remote && memcmp(r.text, "\x81\xa9" "instances\x92\x83", 13) == 0);
  CHECK(strstr(r.text + 13, "tcp@127.0.0.1:8973") != NULL);
  raw_call(c, "List", "\x81\xa4" "base", MRPC_SERIALIZE_MSGPACK, &r); /* truncated */
  CHECK(r.remote && strcmp(r.text, "registry: the payload must be a msgpack map") == 0);
  raw_call(c, "List", "\x81\x01\x02", MRPC_SERIALIZE_MSGPACK, &r); /* an integer key */
  CHECK(r.remote && strcmp(r.text, "registry: the payload must be a msgpack map") == 0);
  raw_call(c, "List", "{}", MRPC_SERIALIZE_PROTOBUF, &r);
  CHECK(r.remote && strcmp(r.text, "can not find codec for 2") == 0);
  raw_call(c, "Register", "{\"service\":\"A\",\"addr\":\"x\",\"ttl\":0}", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strstr(r.text, "ttl must be 1..") != NULL);
  raw_call(c, "Register", "{\"service\":\"A/B\",\"addr\":\"x\",\"ttl\":5}", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strstr(r.text, "without '/'") != NULL);
  raw_call(c, "Register", "{\"service\":7,\"addr\":\"x\",\"ttl\":5}", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strcmp(r.text, "registry: field 'service' must be a string") == 0);
  raw_call(c, "KeepAlive", "{\"leases\":\"x\"}", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strstr(r.text, "must be arrays") != NULL);
  raw_call(c, "KeepAlive", "{\"leases\":[\"nope\"],\"watches\":[\"gone\"]}", MRPC_SERIALIZE_JSON, &r);
  CHECK(!r.remote && strcmp(r.text, "{\"expired\":[\"nope\"],\"lost\":[\"gone\"]}") == 0);
  raw_call(c, "Update", "{\"base\":\"mtest\",\"service\":\"Arith\",\"addr\":\"tcp@1.2.3.4:1\"}", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strcmp(r.text, "registry: not registered") == 0);
  raw_call(c, "Drop", "{}", MRPC_SERIALIZE_JSON, &r);
  CHECK(r.remote && strcmp(r.text, "rpcx: can't find method Drop") == 0);
  {
    char deep[3000];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = 0;
    raw_call(c, "List", deep, MRPC_SERIALIZE_JSON, &r);
    CHECK(r.remote);
    memset(deep, 0x91, sizeof deep - 1); /* msgpack arrays 2999 deep */
    deep[sizeof deep - 2] = (char)0xc0;
    raw_call(c, "List", deep, MRPC_SERIALIZE_MSGPACK, &r);
    CHECK(r.remote && strstr(r.text, "msgpack map") != NULL);
  }
  CHECK_EQ_INT(mrpc_regsrv_count(rs), 2); /* none of that registered anything */
  cli_close(c);
  report("the protocol: JSON over rpcx, rpcx's layout, clear errors for bad requests");
}

static void t_keepalive(void) {
  lst_t l;
  sleep_ms(2500); /* past the 1 s TTL: only KeepAlive keeps them */
  list(r1, &l);
  CHECK_EQ_INT(l.count, 2);
  report("keepalive renews the leases past their TTL");
}

static void t_update(void) {
  done_t d = {0, -1};
  lst_t l;
  in_call = 1;
  CHECK_EQ_INT(mrpc_registry_update(r1, "Arith", "tcp@127.0.0.1:8972", "weight=30&group=a",
                                    on_done, &d), 0);
  in_call = 0;
  WAIT(d.n > 0);
  CHECK_EQ_INT(d.n, 1);
  CHECK_EQ_INT(d.status, 0);
  list(r1, &l);
  CHECK(meta_of(&l, "tcp@127.0.0.1:8972") && strcmp(meta_of(&l, "tcp@127.0.0.1:8972"), "weight=30&group=a") == 0);
  CHECK_EQ_INT(mrpc_registry_update(r1, "Arith", "tcp@127.0.0.1:1", "x", on_done, &d), MRPC_EINVAL);
  report("update replaces the metadata");
}

static void t_watch(void) {
  done_t d = {0, -1};
  int seen;
  in_call = 1;
  CHECK_EQ_INT(mrpc_registry_watch(r1, "Arith", on_list, &wl, &w1), 0);
  in_call = 0;
  WAIT(wl.n > 0);
  CHECK_EQ_INT(wl.status, 0);
  CHECK_EQ_INT(wl.count, 2);
  CHECK_EQ_INT(mrpc_regsrv_watchers(rs), 1);
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
  seen = wl.n;
  sleep_ms(1500); /* keepalives change nothing: the watch stays quiet */
  CHECK_EQ_INT(wl.n, seen);
  report("watch: the list, then each change by server push");
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
  WAIT(wl.n > seen && wl.count == 1);
  sleep_ms(1500); /* not kept alive back */
  list(r1, &l);
  CHECK_EQ_INT(l.count, 1);
  CHECK(!meta_of(&l, "tcp@127.0.0.1:8973"));
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
    execl("/proc/self/exe", "test_registry_embedded", "--helper", url, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  pf.fd = fds[0];
  pf.events = POLLIN;
  /* The loop must run for the helper's calls to be served. */
  seen = wl.n;
  WAITT(wl.n > seen && meta_of(&wl, "tcp@127.0.0.1:9100"), 5000);
  if (poll(&pf, 1, 1000) == 1) n = read(fds[0], buf, sizeof buf - 1);
  CHECK(n > 0 && strncmp(buf, "ready", 5) == 0);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  close(fds[0]);
  seen = wl.n;
  t0 = uv_now(&loop);
  WAITT(wl.n > seen && !meta_of(&wl, "tcp@127.0.0.1:9100"), 4000);
  CHECK(uv_now(&loop) - t0 <= 2000); /* TTL 1 s */
  CHECK_EQ_INT(wl.count, 1);
  report("a killed process's instance expires within its TTL; the watch reports it");
}

static void t_restart(void) {
  int seen;
  char listen[64];
  const char *p = strstr(srv_addr, "@");
  snprintf(listen, sizeof listen, "%s", p ? p + 1 : srv_addr);
  seen = wl.n;
  rs_stop();
  sleep_ms(1500); /* the registry objects notice, and back off */
  CHECK_EQ_INT(wl.n, seen); /* while away: nothing reported */
  rs_start(listen, NULL);
  /* The new registry is empty: instances registered again, the watch
   * re-established and the list reported. */
  WAITT(wl.n > seen && meta_of(&wl, "tcp@127.0.0.1:8972"), 8000);
  CHECK_EQ_INT(wl.count, 1);
  CHECK(strcmp(meta_of(&wl, "tcp@127.0.0.1:8972"), "weight=30&group=a") == 0);
  CHECK_EQ_INT(mrpc_regsrv_count(rs), 1);
  report("the registry restarts: instances registered again, the watch reports again");
}

static void t_close(void) {
  CHECK_EQ_INT(reg(r1, "tcp@127.0.0.1:8974", "weight=1"), 0);
  CHECK_EQ_INT(mrpc_regsrv_count(rs), 2);
  reg_close(r2);
  mrpc_registry_unwatch(w1);
  reg_close(r1);
  r1 = r2 = NULL;
  CHECK_EQ_INT(mrpc_regsrv_count(rs), 0);
  WAIT(mrpc_regsrv_watchers(rs) == 0);
  CHECK_EQ_INT(mrpc_regsrv_watchers(rs), 0);
  report("close unregisters every instance it registered");
}

static void t_limits(void) {
  mrpc_regsrv_opts_t o;
  mrpc_registry_t *r;
  mrpc_watch_t *w[3];
  lst_t l[3];
  done_t d = {0, 0};
  char listen[64];
  const char *p = strstr(srv_addr, "@");
  int i;
  snprintf(listen, sizeof listen, "%s", p ? p + 1 : srv_addr);
  rs_stop();
  memset(&o, 0, sizeof o);
  o.max_entries = 2;
  o.max_watches = 2;
  rs_start(listen, &o);
  r = reg_open(url);
  CHECK_EQ_INT(reg(r, "tcp@127.0.0.1:1", ""), 0);
  CHECK_EQ_INT(reg(r, "tcp@127.0.0.1:2", ""), 0);
  CHECK_EQ_INT(mrpc_registry_register(r, "Arith", "tcp@127.0.0.1:3", "", 1, on_done, &d), 0);
  WAIT(d.n > 0);
  CHECK_EQ_INT(d.status, MRPC_EREMOTE);
  CHECK_EQ_INT(mrpc_regsrv_count(rs), 2);
  memset(l, 0, sizeof l);
  for (i = 0; i < 3; i++) CHECK_EQ_INT(mrpc_registry_watch(r, "Arith", on_list, &l[i], &w[i]), 0);
  WAIT(l[0].n > 0 && l[1].n > 0);
  sleep_ms(300);
  CHECK_EQ_INT(l[0].n + l[1].n + l[2].n, 2); /* the third is refused (and retried) */
  CHECK_EQ_INT(mrpc_regsrv_watchers(rs), 2);
  for (i = 0; i < 3; i++) mrpc_registry_unwatch(w[i]);
  reg_close(r);
  report("max_entries and max_watches refuse past the limit, with an error");
}

static void t_refused(void) {
  mrpc_registry_t *r = reg_open("moonrpc://127.0.0.1:1/refused");
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

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "--helper") == 0) return helper(argv[2]);
  harness_start();
  rs_start("127.0.0.1:0", NULL);
  snprintf(url, sizeof url, "moonrpc://%s/mtest", strchr(srv_addr, '@') + 1);

  t_bad_url();
  t_register_list();
  t_protocol();
  t_keepalive();
  t_update();
  t_watch();
  t_unregister();
  t_expiry();
  t_restart();
  t_close();
  t_limits();
  t_refused();

  if (r1) reg_close(r1);
  if (r2) reg_close(r2);
  rs_stop();
  drain();
  return harness_finish();
}
