/* test_many_conns.c: 10,000 concurrent connections to one server, and
 * max_conns refusing the rest.
 *
 * The server runs in a child process (fork, its own loop) with max_conns =
 * N; this process opens N plain blocking sockets, sends one Echo request on
 * each, reads every answer and holds them all. The child's VmRSS (from
 * /proc/PID/status) is read after the first 100 connections and after all
 * N, and the difference per connection is printed: the memory of an idle
 * connection (goal <= 8 KiB; asserted < 16 KiB, a generous bound, and not
 * under ASan, whose shadow memory and quarantine make RSS meaningless).
 * Then connection N+1 (and two more) are refused: closed at once, logged
 * once; and every one of the N still answers.
 *
 * Both processes need about N + 50 descriptors: RLIMIT_NOFILE is raised to
 * its hard limit, and the test is skipped (77) when that is too low. Under
 * ASan N is 2,000 to keep the run short. argv is ignored. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <uv.h>

#include "moonrpc.h"

#include "check.h"
#include "echo_child.h"

/* ---- the child: a server with Echo.Echo ------------------------------------ */

static int log_fd = -1;

static void child_log(void *ud, int level, const char *msg) {
  char line[300];
  int n = snprintf(line, sizeof line, "%d %s\n", level, msg);
  (void)ud;
  if (write(log_fd, line, (size_t)n) < 0) {}
}

static void child(int port_fd, unsigned max_conns) {
  mrpc_server_opts_t o;
  memset(&o, 0, sizeof o);
  o.limits.max_conns = max_conns;
  o.log = child_log;
  echo_child_run(port_fd, &o); /* until SIGTERM */
}

/* ---- this side: plain sockets ------------------------------------------------ */

static int read_full(int fd, char *p, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, p, n, 0);
    if (r <= 0) return r == 0 ? 0 : -errno;
    p += r;
    n -= (size_t)r;
  }
  return 1;
}

/* One Echo.Echo round trip on fd with seq `seq`: 0 when the answer came
 * with the same seq and payload, else negative. */
static int round_trip(int fd, uint64_t seq) {
  static mrpc_buf_t req;
  char hdr[16], body[256];
  mrpc_frame_t f;
  uint32_t total;
  memset(&f, 0, sizeof f);
  f.serialize = MRPC_SERIALIZE_NONE << 4;
  f.path = f.method = "Echo";
  f.path_len = f.method_len = 4;
  f.payload = "idle?";
  f.payload_len = 5;
  f.seq = seq;
  req.len = 0;
  if (mrpc_frame_encode(&req, &f) != 0) return -1;
  if (send(fd, req.data, req.len, 0) != (ssize_t)req.len) return -2;
  if (read_full(fd, hdr, 16) != 1) return -3;
  total = mrpc_get_u32(hdr + 12);
  if (total > sizeof body || read_full(fd, body, total) != 1) return -4;
  if (mrpc_get_u64(hdr + 4) != seq) return -5;
  if (total < 5 || memcmp(body + total - 5, "idle?", 5) != 0) return -6;
  return 0;
}

static int dial(int port) {
  struct sockaddr_in sa;
  struct timeval tv = {5, 0};
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0) return -errno;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

/* 1 when the server closed fd (EOF or reset) within the receive timeout. */
static int refused(int fd) {
  char b;
  ssize_t r = recv(fd, &b, 1, 0);
  return r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE));
}

int main(int argc, char **argv) {
  const int n = UNDER_ASAN ? 2000 : 10000;
  struct rlimit rl;
  int pfd[2], lfd[2], *fds, i, port, ok = 0, again = 0, nref = 0;
  char addr[320] = "", logs[8192];
  long rss0, rss1;
  double per;
  ssize_t got;
  pid_t pid;
  (void)argc;
  (void)argv;
  signal(SIGPIPE, SIG_IGN);
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t)n + 100) {
    printf("1..0 # skip: RLIMIT_NOFILE hard limit %llu < %d needed\n",
           (unsigned long long)rl.rlim_max, n + 100);
    return 77;
  }
  if (pipe(pfd) != 0 || pipe(lfd) != 0) return 1;
  if ((pid = fork()) == 0) {
    close(pfd[0]);
    close(lfd[0]);
    log_fd = lfd[1];
    child(pfd[1], (unsigned)n);
  }
  close(pfd[1]);
  close(lfd[1]);
  if (read(pfd[0], addr, sizeof addr - 1) <= 0) {
    fprintf(stderr, "the server child did not start\n");
    kill(pid, SIGKILL);
    return 1;
  }
  close(pfd[0]);
  port = atoi(strrchr(addr, ':') + 1);
  fds = calloc((size_t)n + 3, sizeof *fds);

  /* N connections, one request each, every answer read; then all held. */
  rss0 = 0;
  for (i = 0; i < n; i++) {
    if ((fds[i] = dial(port)) < 0) {
      fprintf(stderr, "    connection %d: %s\n", i, strerror(-fds[i]));
      break;
    }
    if (round_trip(fds[i], (uint64_t)i) == 0) ok++;
    if (i == 99) {
      usleep(100 * 1000);
      rss0 = rss_kib(pid);
    }
  }
  usleep(300 * 1000);
  rss1 = rss_kib(pid);
  CHECKF(ok == n, "%d of %d connections answered", ok, n);
  per = (double)(rss1 - rss0) * 1024.0 / (double)(n - 100);
  printf("# %d connections held; server VmRSS %ld KiB after 100, %ld KiB after %d: "
         "%.0f bytes (%.2f KiB) per idle connection%s\n",
         ok, rss0, rss1, n, per, per / 1024.0, UNDER_ASAN ? " (ASan: not checked)" : "");
  if (!UNDER_ASAN) CHECKF(per <= 8 * 1024, "%.0f bytes per idle connection", per); /* the goal */
  reportf("%d concurrent connections, all answered", n);

  /* max_conns = N: the next ones are closed at once, logged once. */
  for (i = 0; i < 3; i++) {
    int fd = dial(port);
    if (fd >= 0 && refused(fd)) nref++;
    if (fd >= 0) close(fd);
  }
  CHECKF(nref == 3, "%d of 3 extra connections refused", nref);
  /* The N are unaffected. */
  for (i = 0; i < n; i++)
    if (fds[i] >= 0 && round_trip(fds[i], (uint64_t)(n + i)) == 0) again++;
  CHECKF(again == n, "%d of %d answered again", again, n);
  for (i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  got = read(lfd[0], logs, sizeof logs - 1);
  logs[got > 0 ? got : 0] = 0;
  {
    int lines = 0;
    const char *p = logs;
    while ((p = strstr(p, "max_conns"))) lines++, p++;
    CHECKF(lines == 1, "max_conns logged %d times: %s", lines, logs);
  }
  reportf("max_conns = %d: 3 more refused, logged once, the %d still answer", n, n);
  free(fds);
  return finish();
}
