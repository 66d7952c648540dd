/* stream.c: a framed rpcx byte stream over libuv (see stream.h). */
#include <string.h>
#include <stdio.h>
#include "transport/transport.h"

static void fail(mrpc__stream_t *st, int err) {
  if (st->failed || st->closing) return;
  st->failed = 1;
  if (st->on_error) st->on_error(st, err);
}

static void on_closed(uv_handle_t *h) {
  mrpc__stream_t *st = (mrpc__stream_t *)h;
  mrpc_decoder_free(&st->dec);
  mrpc_buf_free(&st->out);
  mrpc_buf_free(&st->wbuf);
  if (st->on_closed) st->on_closed(st);
}

int mrpc__stream_init(mrpc__stream_t *st, uv_loop_t *loop, int pipe,
                      const mrpc_limits_t *limits) {
  int r;
  memset(st, 0, sizeof *st);
  r = pipe ? uv_pipe_init(loop, &st->u.pipe, 0) : uv_tcp_init(loop, &st->u.tcp);
  if (r < 0) return r;
  st->is_pipe = pipe ? 1 : 0;
  st->u.handle.data = st;
  mrpc_decoder_init(&st->dec, limits);
  st->max_write_queue = st->dec.limits.max_write_queue;
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  mrpc__stream_t *st = (mrpc__stream_t *)h;
  char *p;
  size_t n;
  if (mrpc_decoder_reserve(&st->dec, suggested, &p, &n) < 0) {
    buf->base = NULL;
    buf->len = 0; /* libuv reports UV_ENOBUFS */
    return;
  }
  buf->base = p;
  buf->len = n;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mrpc__stream_t *st = (mrpc__stream_t *)s;
  mrpc_frame_t f;
  int r;
  if (nread < 0) {
    fail(st, (int)nread);
    return;
  }
  if (nread == 0) return;
  mrpc_decoder_commit(&st->dec, (size_t)nread);
  st->hold++;
  if (st->on_raw) {
    const char *data = st->dec.in.data + st->dec.pos;
    size_t n = st->dec.in.len - st->dec.pos;
    if (st->on_raw(st, data, n) == 0) {
      mrpc_decoder_reset(&st->dec);
      mrpc__stream_release(st);
      return;
    }
    st->on_raw = NULL;
  }
  while (!st->closing && !st->failed &&
         (r = mrpc_decoder_next(&st->dec, &f)) != 0) {
    if (r < 0) {
      fail(st, r);
      break;
    }
    if (st->on_frame(st, &f) != 0) break;
  }
  mrpc__stream_release(st);
}

int mrpc__stream_start(mrpc__stream_t *st) {
  int r = uv_read_start(&st->u.stream, on_alloc, on_read);
  if (r < 0) return r;
  st->connected = 1;
  mrpc__stream_flush(st);
  return 0;
}

mrpc_buf_t *mrpc__stream_out(mrpc__stream_t *st) { return &st->out; }

static void on_write(uv_write_t *req, int status);

/* Hands `out` to the kernel: uv_try_write first; what is left moves to
 * `wbuf` for a uv_write that keeps it alive until its callback. */
static void write_out(mrpc__stream_t *st) {
  uv_buf_t b;
  int r;
  mrpc_buf_t tmp;
  if (st->out.len == 0) return;
  b = uv_buf_init(st->out.data, (unsigned)st->out.len);
  r = uv_try_write(&st->u.stream, &b, 1);
  if (r == UV_EAGAIN) r = 0;
  if (r < 0) {
    st->out.len = 0;
    fail(st, r);
    return;
  }
  if ((size_t)r == st->out.len) {
    st->out.len = 0;
    return;
  }
  /* Swap buffers so the unsent tail lives in wbuf for the uv_write. */
  tmp = st->wbuf;
  st->wbuf = st->out;
  st->out = tmp;
  st->out.len = 0;
  b = uv_buf_init(st->wbuf.data + r, (unsigned)(st->wbuf.len - (size_t)r));
  r = uv_write(&st->wreq, &st->u.stream, &b, 1, on_write);
  if (r < 0) {
    st->wbuf.len = 0;
    fail(st, r);
    return;
  }
  st->writing = 1;
}

static void on_write(uv_write_t *req, int status) {
  mrpc__stream_t *st = (mrpc__stream_t *)req->handle;
  st->writing = 0;
  st->wbuf.len = 0;
  if (status < 0) {
    fail(st, status);
    return;
  }
  if (st->closing) return;
  mrpc__stream_flush(st);
}

void mrpc__stream_flush(mrpc__stream_t *st) {
  if (st->closing || !st->connected || st->hold > 0) return;
  if (st->writing) {
    /* A slow reader: refuse to buffer without bound. */
    if (st->out.len > st->max_write_queue) fail(st, MRPC_ESLOWPEER);
    return;
  }
  write_out(st);
  if (st->close_after_flush && !st->writing && st->out.len == 0)
    mrpc__stream_close(st);
}

void mrpc__stream_hold(mrpc__stream_t *st) { st->hold++; }

void mrpc__stream_release(mrpc__stream_t *st) {
  if (--st->hold == 0) mrpc__stream_flush(st);
}

void mrpc__stream_close(mrpc__stream_t *st) {
  if (st->closing) return;
  st->closing = 1;
  uv_close(&st->u.handle, on_closed);
}

void mrpc__stream_close_after_flush(mrpc__stream_t *st) {
  if (st->closing) return;
  uv_read_stop(&st->u.stream);
  st->close_after_flush = 1;
  mrpc__stream_flush(st);
  if (!st->connected) mrpc__stream_close(st);
}

int mrpc__stream_peer(mrpc__stream_t *st, char *buf, size_t len) {
  struct sockaddr_storage ss;
  int n = sizeof ss, r;
  char ip[64];
  if (st->is_pipe) {
    size_t l = len;
    r = uv_pipe_getsockname(&st->u.pipe, buf, &l);
    if (r == 0 && l < len) buf[l] = 0;
    return r;
  }
  r = uv_tcp_getpeername(&st->u.tcp, (struct sockaddr *)&ss, &n);
  if (r < 0) return r;
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%d", ip, ntohs(a->sin6_port));
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(buf, len, "%s:%d", ip, ntohs(a->sin_port));
  }
  return 0;
}
