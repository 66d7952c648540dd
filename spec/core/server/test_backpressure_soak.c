/* test_backpressure_soak.c: a peer that pipelines requests and never reads
 * its answers, for 30 s (MRPC_SOAK_SECONDS overrides), against a server in
 * a child process (default limits: max_write_queue 4 MiB). Every second
 * the server's VmRSS is sampled from /proc/PID/status; it must stay within
 * 64 MiB of the first sample. Meanwhile a second, normal connection makes
 * a call every 2 ms; every call must succeed and their p99 latency stay
 * under 50 ms (a loose bound: the machine is shared). At the end the peer
 * reads: every answer arrives, in order.
 *
 * This process uses plain non-blocking sockets and mostly sleeps, so the
 * test runs beside others. Skipped (77) under ASan, whose RSS means
 * nothing; test_backpressure.c checks the same logic there. argv ignored. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <uv.h>

#include "moonrpc.h"

#include "check.h"
#include "echo_child.h"


static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(int port) {
  struct sockaddr_in sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return -1;
  return fd;
}

static void encode(mrpc_buf_t *b, uint64_t seq, const char *pay, size_t n) {
  mrpc_frame_t f;
  memset(&f, 0, sizeof f);
  f.serialize = MRPC_SERIALIZE_NONE << 4;
  f.path = f.method = "Echo";
  f.path_len = f.method_len = 4;
  f.payload = pay;
  f.payload_len = n;
  f.seq = seq;
  mrpc_frame_encode(b, &f);
}

/* Waits up to `ms` for fd to be readable/writable (events). */
static int wait_fd(int fd, short events, int ms) {
  struct pollfd p = {fd, events, 0};
  return poll(&p, 1, ms);
}

/* One call on the normal connection (blocking, 2 s at most): its latency
 * in seconds, or a negative number on failure. */
static double normal_call(int fd, uint64_t seq) {
  static mrpc_buf_t b;
  static mrpc_decoder_t d;
  static int init;
  mrpc_frame_t f;
  double t0 = now_s();
  size_t off = 0;
  if (!init) mrpc_decoder_init(&d, NULL), init = 1;
  b.len = 0;
  encode(&b, seq, "ping", 4);
  while (off < b.len) {
    ssize_t w = send(fd, b.data + off, b.len - off, 0);
    if (w < 0 && errno != EAGAIN) return -1;
    if (w > 0) off += (size_t)w;
    else wait_fd(fd, POLLOUT, 100);
  }
  for (;;) {
    char *p;
    size_t room;
    ssize_t r;
    int rc = mrpc_decoder_next(&d, &f);
    if (rc == 1) return f.seq == seq ? now_s() - t0 : -2;
    if (rc < 0 || now_s() - t0 > 2) return -3;
    if (wait_fd(fd, POLLIN, 100) <= 0) continue;
    mrpc_decoder_reserve(&d, 4096, &p, &room);
    r = recv(fd, p, room, 0);
    if (r <= 0) return -4;
    mrpc_decoder_commit(&d, (size_t)r);
  }
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *env = getenv("MRPC_SOAK_SECONDS");
  double secs = env ? atof(env) : 30, t0, next_sample;
  char addr[320] = "", pay[1024];
  int pfd[2], port, deaf, norm, nlat = 0, failed = 0, i;
  long rss_first = -1, rss_max = 0, rss;
  uint64_t sent = 0, got = 0;
  mrpc_buf_t req = {0};
  size_t req_off = 0;
  mrpc_decoder_t dd;
  mrpc_frame_t f;
  int in_order = 1;
  static double lat[200000];
  pid_t pid;
  (void)argc;
  (void)argv;
  if (UNDER_ASAN) {
    printf("1..0 # skip: RSS under ASan means nothing (test_backpressure_asan checks the logic)\n");
    return 77;
  }
  signal(SIGPIPE, SIG_IGN);
  if (pipe(pfd) != 0) return 1;
  if ((pid = fork()) == 0) {
    close(pfd[0]);
    echo_child_run(pfd[1], NULL);
  }
  close(pfd[1]);
  if (read(pfd[0], addr, sizeof addr - 1) <= 0) return 1;
  port = atoi(strrchr(addr, ':') + 1);
  deaf = dial(port);
  norm = dial(port);
  if (deaf < 0 || norm < 0) {
    kill(pid, SIGKILL);
    return 1;
  }
  fcntl(deaf, F_SETFL, fcntl(deaf, F_GETFL) | O_NONBLOCK);
  fcntl(norm, F_SETFL, fcntl(norm, F_GETFL) | O_NONBLOCK);
  memset(pay, 'z', sizeof pay);
  t0 = now_s();
  next_sample = t0;
  while (now_s() - t0 < secs) {
    double l;
    /* The deaf peer: as many requests as the socket takes; never reads. */
    for (i = 0; i < 64; i++) {
      ssize_t w;
      if (req_off == req.len) {
        req.len = 0;
        req_off = 0;
        encode(&req, sent++, pay, sizeof pay);
      }
      w = send(deaf, req.data + req_off, req.len - req_off, 0);
      if (w <= 0) break;
      req_off += (size_t)w;
    }
    l = normal_call(norm, 1000000 + (uint64_t)nlat + (uint64_t)failed);
    if (l < 0) failed++;
    else if (nlat < (int)(sizeof lat / sizeof lat[0])) lat[nlat++] = l;
    if (now_s() >= next_sample) {
      rss = rss_kib(pid);
      if (rss_first < 0) rss_first = rss;
      if (rss > rss_max) rss_max = rss;
      next_sample += 1;
    }
    usleep(2000);
  }
  qsort(lat, (size_t)nlat, sizeof lat[0], cmp_d);
  printf("# %.0f s: the deaf peer sent %llu requests of 1 KiB; server VmRSS first %ld KiB, max %ld KiB "
         "(growth %ld KiB); %d normal calls, %d failed, p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
         secs, (unsigned long long)sent, rss_first, rss_max, rss_max - rss_first, nlat, failed,
         nlat ? lat[nlat / 2] * 1e3 : 0, nlat ? lat[nlat * 99 / 100] * 1e3 : 0,
         nlat ? lat[nlat - 1] * 1e3 : 0);
  CHECKF(rss_max - rss_first < 64 * 1024, "RSS grew %ld KiB", rss_max - rss_first);
  CHECKF(failed == 0, "%d normal calls failed", failed);
  CHECKF(nlat > 100, "only %d normal calls", nlat);
  CHECKF(nlat == 0 || lat[nlat * 99 / 100] < 0.050, "p99 %.3f ms", lat[nlat * 99 / 100] * 1e3);
  /* Finish the last request, then read every answer. */
  fcntl(deaf, F_SETFL, fcntl(deaf, F_GETFL) & ~O_NONBLOCK);
  mrpc_decoder_init(&dd, NULL);
  while (req_off < req.len) {
    /* Reading is paused until we drain: read while writing. */
    ssize_t w = send(deaf, req.data + req_off, req.len - req_off, MSG_DONTWAIT);
    if (w > 0) req_off += (size_t)w;
    if (wait_fd(deaf, POLLIN, 10) > 0) {
      char *p;
      size_t room;
      ssize_t r;
      mrpc_decoder_reserve(&dd, 65536, &p, &room);
      r = recv(deaf, p, room, 0);
      if (r <= 0) break;
      mrpc_decoder_commit(&dd, (size_t)r);
      while (mrpc_decoder_next(&dd, &f) == 1) {
        if (f.seq != got) in_order = 0;
        got++;
      }
    }
  }
  t0 = now_s();
  while (got < sent && now_s() - t0 < 20) {
    char *p;
    size_t room;
    ssize_t r;
    if (wait_fd(deaf, POLLIN, 1000) <= 0) continue;
    mrpc_decoder_reserve(&dd, 65536, &p, &room);
    r = recv(deaf, p, room, 0);
    if (r <= 0) break;
    mrpc_decoder_commit(&dd, (size_t)r);
    while (mrpc_decoder_next(&dd, &f) == 1) {
      if (f.seq != got) in_order = 0;
      got++;
    }
  }
  CHECKF(got == sent && in_order, "%llu of %llu answers, in order: %d",
         (unsigned long long)got, (unsigned long long)sent, in_order);
  printf("# the peer then read %llu answers, in order: %s\n", (unsigned long long)got,
         in_order ? "yes" : "no");
  close(deaf);
  close(norm);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  mrpc_decoder_free(&dd);
  mrpc_buf_free(&req);
  reportf("a peer that never reads for %.0f s: RSS bounded, others served, all answered", secs);
  return finish();
}
