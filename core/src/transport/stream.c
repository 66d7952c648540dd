/* stream.c: a framed rpcx byte stream over libuv, with its backpressure and
 * its shared read buffer (contracts in transport.h). */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "transport/transport.h"

/* Buffers the stream keeps between reads and writes only up to these
 * sizes when it reads through a shared buffer (a server connection); larger
 * ones are freed once empty, so idle connections stay small. */
#define IN_KEEP 1024u
#define OUT_KEEP (16u * 1024)

static void fail(mrpc__stream_t *st, int err) {
  if (st->failed || st->closing) return;
  st->failed = 1;
  if (st->on_error) st->on_error(st, err);
}

int mrpc__rbuf_init(mrpc__rbuf_t *b, size_t cap) {
  b->busy = 0;
  b->cap = cap;
  b->data = malloc(cap);
  return b->data ? 0 : MRPC_ENOMEM;
}

void mrpc__rbuf_free(mrpc__rbuf_t *b) {
  free(b->data);
  b->data = NULL;
  b->cap = 0;
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
  st->hard_queue = st->max_write_queue + (size_t)st->dec.limits.max_frame;
  st->last_active = uv_now(loop);
  return 0;
}

size_t mrpc__stream_queued(const mrpc__stream_t *st) {
  return st->out.len + st->wpending;
}

/* Reads go into the shared buffer when it is free and the incomplete frame
 * the decoder holds (if any) fits in half of it: those bytes move to its
 * front, so the decoder sees one contiguous run. Otherwise (a nested read,
 * a large frame) into the decoder's own buffer, as without sharing. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  mrpc__stream_t *st = (mrpc__stream_t *)h;
  mrpc__rbuf_t *sh = st->shared;
  char *p;
  size_t n, tail = mrpc_decoder_pending(&st->dec);
  if (st->in_shared) {
    /* A read of this same stream from inside its own read callback (a
     * host that ran the loop from a handler, which libuv forbids): the
     * decoder holds the borrowed shared buffer, which must not move. */
    buf->base = NULL;
    buf->len = 0; /* libuv reports UV_ENOBUFS */
    return;
  }
  if (sh && !sh->busy && !st->dec.error && tail <= sh->cap / 2) {
    if (tail) memcpy(sh->data, st->dec.in.data + st->dec.pos, tail);
    st->dec.in.len = st->dec.pos = 0;
    sh->busy = 1;
    st->in_shared = 1;
    st->shared_tail = tail;
    *buf = uv_buf_init(sh->data + tail, (unsigned)(sh->cap - tail));
    return;
  }
  if (mrpc_decoder_reserve(&st->dec, suggested, &p, &n) < 0) {
    buf->base = NULL;
    buf->len = 0; /* libuv reports UV_ENOBUFS */
    return;
  }
  buf->base = p;
  buf->len = n;
}

/* The decoder parses the shared buffer in place of its own... */
static void borrow_shared(mrpc__stream_t *st, size_t nread, mrpc_buf_t *own) {
  *own = st->dec.in;
  st->dec.in.data = st->shared->data;
  st->dec.in.len = st->shared_tail + nread;
  st->dec.in.cap = st->shared->cap;
  st->dec.pos = 0;
}

/* ...and afterwards gets its own back with a copy of the bytes of the
 * frame left incomplete, which the next read completes. */
static void return_shared(mrpc__stream_t *st, mrpc_buf_t own) {
  mrpc_buf_t *in = &st->dec.in;
  const char *tail = in->data + st->dec.pos;
  size_t n = in->len - st->dec.pos;
  *in = own;
  in->len = st->dec.pos = 0;
  st->shared->busy = 0;
  st->in_shared = 0;
  if (n == 0) {
    if (in->cap > IN_KEEP) mrpc_buf_free(in);
    if (st->dec.inflate.cap > IN_KEEP) mrpc_buf_free(&st->dec.inflate);
  } else if (mrpc_buf_append(in, tail, n) < 0) {
    fail(st, MRPC_ENOMEM);
  }
}

/* Hands the bytes of one read to the raw hook or the frame decoder. */
static void deliver(mrpc__stream_t *st) {
  mrpc_frame_t f;
  int r;
  if (st->on_raw) {
    const char *data = st->dec.in.data + st->dec.pos;
    size_t n = st->dec.in.len - st->dec.pos;
    if (st->on_raw(st, data, n) == 0) {
      mrpc_decoder_reset(&st->dec);
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
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  mrpc__stream_t *st = (mrpc__stream_t *)s;
  mrpc_buf_t own;
  int shared = st->in_shared;
  (void)buf;
  if (nread <= 0) {
    if (shared) { /* nothing read: the moved tail goes back */
      borrow_shared(st, 0, &own);
      return_shared(st, own);
    }
    if (nread < 0) fail(st, (int)nread);
    return;
  }
  st->last_active = uv_now(s->loop);
  if (shared) borrow_shared(st, (size_t)nread, &own);
  else mrpc_decoder_commit(&st->dec, (size_t)nread);
  st->hold++;
  deliver(st);
  if (shared) {
    return_shared(st, own);
  } else if (st->shared && mrpc_decoder_pending(&st->dec) == 0 &&
             st->dec.in.cap > IN_KEEP) {
    mrpc_buf_free(&st->dec.in); /* a large frame is done: let it go */
    st->dec.pos = 0;
  }
  mrpc__stream_release(st);
}

int mrpc__stream_start(mrpc__stream_t *st) {
  int r = uv_read_start(&st->u.stream, on_alloc, on_read);
  if (r < 0) return r;
  st->connected = 1;
  st->last_active = uv_now(st->u.handle.loop);
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
    if (st->shared && st->out.cap > OUT_KEEP) mrpc_buf_free(&st->out);
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
  st->wpending = b.len;
}

static void on_write(uv_write_t *req, int status) {
  mrpc__stream_t *st = (mrpc__stream_t *)req->handle;
  st->writing = 0;
  st->wbuf.len = 0;
  st->wpending = 0;
  if (st->shared && st->wbuf.cap > OUT_KEEP) mrpc_buf_free(&st->wbuf);
  if (status < 0) {
    fail(st, status);
    return;
  }
  if (st->closing) return;
  if (st->paused) st->last_active = uv_now(req->handle->loop);
  mrpc__stream_flush(st);
}

/* Backpressure (see transport.h): the hard cap, then pause or resume. */
static void check_queue(mrpc__stream_t *st) {
  size_t q = mrpc__stream_queued(st);
  if (q > st->queued_peak) st->queued_peak = q;
  if (q > st->hard_queue) {
    fail(st, MRPC_ESLOWPEER);
    return;
  }
  if (!st->pausable || st->close_after_flush || !st->connected) return;
  if (!st->paused && q >= st->max_write_queue) {
    uv_read_stop(&st->u.stream);
    st->paused = 1;
  } else if (st->paused && q <= st->max_write_queue / 2) {
    st->paused = 0;
    if (uv_read_start(&st->u.stream, on_alloc, on_read) < 0)
      fail(st, MRPC_ECONNLOST);
  }
}

void mrpc__stream_flush(mrpc__stream_t *st) {
  if (st->closing || st->failed) return;
  if (st->connected && st->hold == 0 && !st->writing) write_out(st);
  if (st->closing || st->failed) return;
  check_queue(st);
  if (st->close_after_flush && st->connected && st->hold == 0 &&
      !st->writing && st->out.len == 0)
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
