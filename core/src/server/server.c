/* server.c: the rpcx server as a whole, the top of this folder: making one
 * (with the reflection service, reflect.c, unless opts.no_reflection),
 * its listeners, accepting connections and wiring each one's stream to the
 * dispatch (dispatch.c), and the entry points of graceful shutdown and
 * close. What keeps the server and its connections alive, and the rest of
 * the shutdown sequence, is lifetime.c's, below. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include "server/server.h"

/* ---- connections ---------------------------------------------------------- */

static void conn_on_error(mrpc__stream_t *st, int err) {
  conn_t *c = st->owner;
  if (err != UV_EOF && err != UV_ECONNRESET)
    mrpc__log(c->srv->opts.log, c->srv->opts.log_udata, 1,
              "closing connection: %s (%s)", mrpc_strerror(err),
              mrpc_err_name(err));
  mrpc__stream_close(st);
}

static void conn_on_closed(mrpc__stream_t *st) {
  conn_t *c = st->owner;
  mrpc_server_t *s = c->srv;
  c->closed = 1;
  s->open_conns--;
  if (st->queued_peak > s->queued_peak) s->queued_peak = st->queued_peak;
  if (c->foreign && s->foreign) s->foreign(c, NULL, 0, s->foreign_udata);
  mrpc__conn_closed(c);
}

/* The first read of a connection when a foreign hook is set: rpcx frames
 * begin with the magic byte; anything else goes to the hook from now on. */
static int conn_sniff(mrpc__stream_t *st, const char *data, size_t len) {
  conn_t *c = st->owner;
  mrpc_server_t *s = c->srv;
  if (!c->foreign && (len == 0 || (unsigned char)data[0] == MRPC_MAGIC)) return 1;
  if (!s->foreign || s->closing) {
    mrpc__stream_close(st);
    return 0;
  }
  c->foreign = 1;
  s->foreign(c, data, len, s->foreign_udata);
  return 0;
}

static void on_connection(uv_stream_t *server, int status) {
  listener_t *l = server->data;
  mrpc_server_t *s = l->srv;
  conn_t *c;
  if (status < 0 || s->closing) return;
  if (!(c = calloc(1, sizeof *c))) return;
  if (mrpc__stream_init(&c->st, s->loop, l->is_pipe, &s->opts.limits) < 0) {
    free(c);
    return;
  }
  c->st.owner = c;
  c->st.on_frame = mrpc__dispatch_frame;
  c->st.on_error = conn_on_error;
  c->st.on_closed = conn_on_closed;
  if (s->foreign) c->st.on_raw = conn_sniff;
  c->srv = s;
  c->refs = 1;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  s->open_conns++;
  s->live++;
  if (uv_accept(server, &c->st.u.stream) < 0) {
    mrpc__stream_close(&c->st);
    return;
  }
  if (s->nconns > s->opts.limits.max_conns) {
    /* Logged once per episode: a flood of refusals is one event. */
    if (!s->refusing)
      mrpc__log(s->opts.log, s->opts.log_udata, 1,
                "refusing connections: max_conns (%u) reached",
                s->opts.limits.max_conns);
    s->refusing = 1;
    s->refused++;
    mrpc__stream_close(&c->st);
    return;
  }
  s->refusing = 0;
  c->st.pausable = 1;
  c->st.shared = &s->rbuf;
  if (!l->is_pipe) uv_tcp_nodelay(&c->st.u.tcp, 1);
  if (mrpc__stream_start(&c->st) < 0) mrpc__stream_close(&c->st);
}

/* The idle_timeout sweep: connections with no call in flight and no
 * traffic for the timeout are closed. */
static void on_idle_sweep(uv_timer_t *t) {
  mrpc_server_t *s = t->data;
  uint64_t now = uv_now(s->loop), limit = s->opts.idle_timeout_ms;
  conn_t *c;
  if (s->shutting) return; /* connections are draining: let them */
  for (c = s->conns; c; c = c->next) {
    if (c->closed || c->st.closing || c->calls > 0) continue;
    if (now - c->st.last_active < limit) continue;
    s->idle_closed++;
    mrpc__stream_close(&c->st);
  }
}

/* ---- the server ------------------------------------------------------------ */

/* The shared read buffer: libuv's usual suggestion. */
#define RBUF_SIZE (64u * 1024)

int mrpc_server_new(uv_loop_t *loop, const mrpc_server_opts_t *opts,
                    mrpc_server_t **out) {
  mrpc_server_t *s = calloc(1, sizeof *s);
  if (!s) return MRPC_ENOMEM;
  s->loop = loop;
  if (opts) s->opts = *opts;
  mrpc_limits_default(&s->opts.limits);
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  uv_timer_init(loop, &s->idle_timer);
  s->idle_timer.data = s;
  uv_unref((uv_handle_t *)&s->idle_timer); /* never keeps the loop alive */
  s->live = 2; /* the timers */
  if (mrpc__rbuf_init(&s->rbuf, RBUF_SIZE) < 0) {
    mrpc_server_close(s, NULL, NULL);
    return MRPC_ENOMEM;
  }
  if (s->opts.idle_timeout_ms) {
    uint64_t every = s->opts.idle_timeout_ms / 4;
    uv_timer_start(&s->idle_timer, on_idle_sweep, every ? every : 1, every ? every : 1);
  }
  if (!s->opts.no_reflection && mrpc__reflection_add(s) < 0) {
    mrpc_server_close(s, NULL, NULL);
    return MRPC_ENOMEM;
  }
  *out = s;
  return 0;
}

static void listener_closed(uv_handle_t *h) {
  listener_t *l = h->data;
  mrpc_server_t *s = l->srv;
  if (l->is_pipe) unlink(l->addr + 5); /* we made the socket file */
  free(l);
  mrpc__server_unref(s);
}

/* Initialises a TCP listener's handle; with opts.reuseport the socket is
 * made at once (uv_tcp_init_ex) so that SO_REUSEPORT is set before the
 * bind (libuv 1.44 has no flag for it). The handle is initialised even when
 * this fails, so the caller closes it as usual. */
static int reuseport_init(mrpc_server_t *s, uv_tcp_t *t, int family) {
  uv_os_fd_t fd;
  int on = 1, r;
  if (!s->opts.reuseport) return uv_tcp_init(s->loop, t);
  if ((r = uv_tcp_init_ex(s->loop, t, (unsigned)family)) < 0) {
    uv_tcp_init(s->loop, t);
    return r;
  }
  if ((r = uv_fileno((uv_handle_t *)t, &fd)) < 0) return r;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) < 0) return uv_translate_sys_error(errno);
  return 0;
}

int mrpc_server_listen(mrpc_server_t *s, const char *network,
                       const char *address) {
  listener_t *l;
  int r;
  if (s->closing || s->shutting || s->nlisteners >= MAX_LISTENERS)
    return MRPC_EINVAL;
  if (!(l = calloc(1, sizeof *l))) return MRPC_ENOMEM;
  l->srv = s;
  l->u.handle.data = l;
  if (strcmp(network, "unix") == 0) {
    l->is_pipe = 1;
    if (strlen(address) + 6 > sizeof l->addr) {
      free(l);
      return MRPC_EADDR;
    }
    snprintf(l->addr, sizeof l->addr, "unix@%s", address);
    uv_pipe_init(s->loop, &l->u.pipe, 0);
    r = uv_pipe_bind(&l->u.pipe, address);
  } else if (strncmp(network, "tcp", 3) == 0) {
    struct sockaddr_storage ss;
    char host[256];
    int port, nl = sizeof ss;
    r = mrpc__sockaddr(address, &ss, host, sizeof host, &port);
    if (r != 0) {
      free(l);
      return MRPC_EADDR;
    }
    r = reuseport_init(s, &l->u.tcp, ss.ss_family);
    if (r == 0) r = uv_tcp_bind(&l->u.tcp, (struct sockaddr *)&ss, 0);
    if (r == 0) r = uv_tcp_getsockname(&l->u.tcp, (struct sockaddr *)&ss, &nl);
    if (r == 0) r = mrpc__sockname(&ss, l->addr, sizeof l->addr);
  } else {
    free(l);
    return MRPC_EADDR;
  }
  s->live++;
  if (r == 0) r = uv_listen(&l->u.stream, 511, on_connection);
  if (r < 0) {
    if (l->is_pipe) l->addr[5] = 0; /* not ours: do not unlink */
    uv_close(&l->u.handle, listener_closed);
    return r;
  }
  s->listeners[s->nlisteners++] = l;
  return 0;
}

int mrpc_server_address(mrpc_server_t *s, int i, char *buf, size_t len) {
  if (i < 0 || i >= s->nlisteners) return MRPC_EINVAL;
  if (strlen(s->listeners[i]->addr) >= len) return UV_ENOBUFS;
  strcpy(buf, s->listeners[i]->addr);
  return 0;
}

size_t mrpc_server_conn_count(const mrpc_server_t *s) { return s->nconns; }
size_t mrpc_server_inflight(const mrpc_server_t *s) { return s->inflight; }

void mrpc_server_stats(const mrpc_server_t *s, mrpc_server_stats_t *o) {
  const conn_t *c;
  memset(o, 0, sizeof *o);
  o->conns = s->nconns;
  o->inflight = s->inflight;
  o->queued_peak = s->queued_peak;
  o->refused = s->refused;
  o->idle_closed = s->idle_closed;
  for (c = s->conns; c; c = c->next) {
    if (c->closed) continue;
    o->queued += mrpc__stream_queued(&c->st);
    if (c->st.paused) o->paused++;
    if (c->st.queued_peak > o->queued_peak) o->queued_peak = c->st.queued_peak;
  }
}

static void close_listeners(mrpc_server_t *s) {
  int i;
  for (i = 0; i < s->nlisteners; i++)
    uv_close(&s->listeners[i]->u.handle, listener_closed);
  s->nlisteners = 0;
}

int mrpc_server_shutdown(mrpc_server_t *s, uint64_t timeout_ms,
                         mrpc_server_cb cb, void *udata) {
  if (s->closing || s->shutting) return MRPC_ECLOSED;
  uv_update_time(s->loop); /* the host may have blocked: count from now */
  s->shutting = 1;
  s->shutdown_cb = cb;
  s->shutdown_udata = udata;
  s->shutdown_timeout = timeout_ms;
  close_listeners(s);
  mrpc__shutdown_begin(s);
  return 0;
}

static void timer_closed(uv_handle_t *h) { mrpc__server_unref(h->data); }

void mrpc_server_close(mrpc_server_t *s, mrpc_server_cb cb, void *udata) {
  conn_t *c;
  if (s->closing) return;
  s->closing = 1;
  s->close_cb = cb;
  s->close_udata = udata;
  s->shutdown_cb = NULL;
  s->flushing = 0;
  close_listeners(s);
  for (c = s->conns; c; c = c->next) mrpc__stream_close(&c->st);
  uv_close((uv_handle_t *)&s->timer, timer_closed);
  uv_close((uv_handle_t *)&s->idle_timer, timer_closed);
}
