/* bench_mem.c: the server's memory as moonrpc-bench samples it once a
 * second for a soak: the resident set of the --server-pid processes (VmRSS
 * in /proc/PID/status) and, with --lua-memory, the Lua state of a Lua echo
 * server (its Echo.Memory method, lua/moonrpc/cli/echo.lua), called over a
 * connection of its own.
 *
 * Both run on the main thread, between the workers' loops, so the probe is
 * plain blocking I/O with the --timeout as its socket timeout: one small
 * request a second, answered in the server's turn like every other. */
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

/* ---- tracks ---- */

void track_add(track_t *t, double v) {
  if (t->n == 0) t->first = v;
  if (t->n == 0 || v > t->max) t->max = v;
  t->last = v;
  t->n++;
}

/* ---- resident set ---- */

/* VmRSS of process `pid` in KiB. Returns 0, or -1 with errno set. */
int rss_read_pid(int pid, uint64_t *kib) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  int found = 0;
  unsigned long long v = 0;
  while (!found && fgets(line, sizeof line, f))
    found = sscanf(line, "VmRSS: %llu kB", &v) == 1;
  fclose(f);
  if (!found) {
    errno = ESRCH; /* a zombie has no VmRSS line */
    return -1;
  }
  *kib = v;
  return 0;
}

/* The sum over the --server-pid processes, or -1 when one is unreadable. */
double rss_sample(const opts_t *o) {
  uint64_t total = 0;
  for (int i = 0; i < o->npids; i++) {
    uint64_t v;
    if (rss_read_pid(o->pids[i], &v) != 0) return -1;
    total += v;
  }
  return (double)total;
}

/* ---- Echo.Memory ---- */

static int probe_connect(const opts_t *o, const struct sockaddr_storage *addr) {
  struct sockaddr_un un;
  const struct sockaddr *sa = (const struct sockaddr *)addr;
  socklen_t len = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  int fd = socket(o->path ? AF_UNIX : addr->ss_family, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct timeval tv = { (time_t)o->timeout, (suseconds_t)((o->timeout - (double)(time_t)o->timeout) * 1e6) };
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (o->path) {
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof un.sun_path, "%s", o->path);
    sa = (const struct sockaddr *)&un;
    len = sizeof un;
  }
  if (connect(fd, sa, len) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* One call of SERVICE.Memory with JSON `{}`; its reply is a JSON number.
 * Returns 0 with *kib set, or -1 with a message in err. */
static int probe_call(probe_t *p, const opts_t *o, double *kib, char *err, size_t errlen) {
  mrpc_frame_t f;
  mrpc_buf_t out = {0};
  memset(&f, 0, sizeof f);
  f.serialize = (uint8_t)(MRPC_SERIALIZE_JSON << 4);
  f.seq = ++p->seq;
  f.path = o->service;
  f.path_len = strlen(o->service);
  f.method = "Memory";
  f.method_len = 6;
  f.payload = "{}";
  f.payload_len = 2;
  if (mrpc_frame_encode(&out, &f) != 0) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  size_t off = 0;
  while (off < out.len) {
    ssize_t n = write(p->fd, out.data + off, out.len - off);
    if (n <= 0) {
      snprintf(err, errlen, "write: %s", n < 0 ? strerror(errno) : "closed");
      mrpc_buf_free(&out);
      return -1;
    }
    off += (size_t)n;
  }
  mrpc_buf_free(&out);
  for (;;) {
    int r;
    while ((r = mrpc_decoder_next(&p->dec, &f)) == 1) {
      if (f.seq != p->seq) continue; /* a late answer to an earlier probe */
      char num[64];
      const mrpc_meta_t *m = mrpc_frame_meta_get(&f, MRPC_META_ERROR);
      if (mrpc_frame_status(&f) != MRPC_STATUS_NORMAL) {
        snprintf(err, errlen, "%s.Memory: %.*s", o->service, m ? (int)m->val_len : 5,
                 m ? m->val : "error");
        return -1;
      }
      char *end;
      size_t len = f.payload_len < sizeof num - 1 ? f.payload_len : sizeof num - 1;
      memcpy(num, f.payload, len);
      num[len] = '\0';
      *kib = strtod(num, &end);
      if (end == num) {
        snprintf(err, errlen, "%s.Memory answered '%s', not a number", o->service, num);
        return -1;
      }
      return 0;
    }
    if (r < 0) {
      snprintf(err, errlen, "bad frame: %s", mrpc_strerror(r));
      return -1;
    }
    char *buf;
    size_t room;
    if (mrpc_decoder_reserve(&p->dec, 4096, &buf, &room) != 0) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
    ssize_t n = read(p->fd, buf, room);
    if (n <= 0) {
      snprintf(err, errlen, "read: %s", n < 0 ? strerror(errno) : "closed by the server");
      return -1;
    }
    mrpc_decoder_commit(&p->dec, (size_t)n);
  }
}

/* The Lua state's memory in KiB (after a full collection, as Echo.Memory
 * reports it), connecting on first use. Returns -1 after a failure, which
 * it reports once and which ends the probing. */
double probe_lua_memory(probe_t *p, const opts_t *o, const struct sockaddr_storage *addr) {
  char err[512];
  double kib;
  if (p->failed) return -1;
  if (!p->connected) {
    if (!p->inited) mrpc_decoder_init(&p->dec, NULL);
    p->inited = 1;
    p->fd = probe_connect(o, addr);
    p->connected = p->fd >= 0;
    if (!p->connected) {
      snprintf(err, sizeof err, "connect: %s", strerror(errno));
      goto fail;
    }
  }
  if (probe_call(p, o, &kib, err, sizeof err) == 0) return kib;
fail:
  bench_warn("--lua-memory: %s; no more Lua memory samples", err);
  p->failed = 1;
  return -1;
}

void probe_close(probe_t *p) {
  if (p->connected) close(p->fd);
  p->connected = 0;
  if (p->inited) mrpc_decoder_free(&p->dec);
  p->inited = 0;
}
