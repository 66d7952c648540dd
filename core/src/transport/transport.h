/* transport/transport.h (internal): the transport layer, the only header
 * other folders include from transport/. It holds rpcx addresses and their
 * parsing (addr.c) and one framed rpcx byte stream over a libuv TCP or pipe
 * handle (stream.c), shared by server connections and client connections.
 * It may call the codec (frame decoder and encoder) and base/; it reports
 * to its owner only through the callbacks below.
 *
 * Reads go straight into the frame decoder's buffer. Writes are appended to
 * `out`; while the stream is inside its own read callback (or the owner has
 * called mrpc__stream_hold) nothing is written, and everything gathered is
 * sent with one uv_try_write when the callback returns, a queued uv_write
 * taking only what the kernel did not accept. That keeps the number of
 * system calls per request low, which sets throughput on loopback.
 *
 * Backpressure. The bytes queued for the peer (gathered plus handed to a
 * uv_write not yet done) are bounded twice. Past max_write_queue a stream
 * whose owner set `pausable` (server connections) stops reading: a peer
 * that sends requests and never reads their answers gets no more of its
 * requests read, so it cannot make us produce more; reading resumes once
 * the queue has drained to half the limit. Past the hard cap,
 * max_write_queue + max_frame (output that grows although nothing is read
 * any more: answers to calls already running, server pushes), the stream
 * fails with MRPC_ESLOWPEER. The margin of one max_frame lets one legal
 * frame of any size be queued on top of a queue just under the limit.
 *
 * Idle memory. A read normally lands in the owner's shared read buffer
 * (`shared`, one per server) instead of one of its own; only the bytes of a
 * frame left incomplete at the end of the read are copied into the
 * decoder's own buffer, and that is freed again by the first read that ends
 * on a frame boundary. Output buffers above OUT_KEEP bytes are freed once
 * written. So a connection that is not in the middle of something holds no
 * buffer larger than a few hundred bytes. */
#ifndef MOONRPC_TRANSPORT_H
#define MOONRPC_TRANSPORT_H

#include <uv.h>
#include "base/base.h"
#include "moonrpc/frame.h"

/* Addresses (addr.c): "host:port", "[v6]:port" or ":port" split into host
 * and port (0 or MRPC_EADDR); the same parsed into a socket address, 0, or 1
 * when the host is a name the caller must resolve, or MRPC_EADDR; a socket
 * address printed as rpcx's "tcp@ip:port" (0 or UV_ENOBUFS). */
int mrpc__hostport(const char *hp, char *host, size_t hlen, int *port);
int mrpc__sockaddr(const char *hp, struct sockaddr_storage *ss, char *host,
                   size_t hlen, int *port);
int mrpc__sockname(const struct sockaddr_storage *ss, char *buf, size_t len);

typedef struct mrpc__stream_s mrpc__stream_t;

/* A read buffer shared by the streams of one owner on one loop (a server's
 * connections). It is lent to one read at a time: `busy` while a read
 * callback runs, so a read nested inside another's callback uses its own
 * buffer. The owner allocates `data` (mrpc__rbuf_init) and frees it
 * (mrpc__rbuf_free) after every stream that uses it has closed. */
typedef struct mrpc__rbuf_s {
  char *data;
  size_t cap;
  int busy;
} mrpc__rbuf_t;

int mrpc__rbuf_init(mrpc__rbuf_t *b, size_t cap); /* 0 or MRPC_ENOMEM */
void mrpc__rbuf_free(mrpc__rbuf_t *b);

/* Called for each decoded frame; `f` is valid only during the call.
 * Returns 0 to go on, non-zero to stop reading frames from this read. */
typedef int (*mrpc__frame_fn)(mrpc__stream_t *st, mrpc_frame_t *f);
/* Called once when the stream fails: EOF (UV_EOF), a read or write error,
 * a protocol error from the decoder, or MRPC_ESLOWPEER (the write queue
 * past its hard cap, see Backpressure above). The
 * owner normally answers with mrpc__stream_close. */
typedef void (*mrpc__error_fn)(mrpc__stream_t *st, int err);
/* Raw mode: while set, each read's bytes go here instead of the decoder.
 * Returns 0 when it took them, 1 to leave raw mode (the hook is cleared) and
 * decode the same bytes as frames. */
typedef int (*mrpc__raw_fn)(mrpc__stream_t *st, const char *data, size_t len);
/* Called once from the close callback: the owner may free the stream. */
typedef void (*mrpc__closed_fn)(mrpc__stream_t *st);

/* Embedded in its owner (a server connection, a client link), which frees
 * the memory only from on_closed, after the handle has closed. */
struct mrpc__stream_s {
  union {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  } u;
  mrpc_decoder_t dec; /* owned; its memory freed at close */
  mrpc_buf_t out;     /* owned, freed at close: gathered, not yet handed to the kernel */
  mrpc_buf_t wbuf;    /* owned, freed at close; lent to the uv_write in flight */
  uv_write_t wreq;
  size_t wpending;        /* bytes of wbuf the uv_write in flight still holds */
  size_t max_write_queue; /* reading pauses past it (when pausable) */
  size_t hard_queue;      /* MRPC_ESLOWPEER past it */
  size_t queued_peak;     /* the most bytes ever queued, for stats */
  size_t shared_tail;
  uint64_t last_active;   /* uv_now() of the last read, or of the last write
                           * done while reading was paused (idle timeouts) */
  mrpc__rbuf_t *shared;   /* not owned: the owner's shared read buffer, or
                           * NULL to read into the decoder's own */
  unsigned pausable : 1;  /* the owner wants reads paused by backpressure */
  unsigned paused : 1;    /* reading stopped by backpressure */
  unsigned in_shared : 1; /* the current read went into `shared`, after
                           * `shared_tail` bytes moved there from dec.in */
  unsigned writing : 1;   /* a uv_write is in flight */
  unsigned connected : 1; /* writes may go out */
  unsigned closing : 1;   /* uv_close called */
  unsigned failed : 1;    /* on_error already called */
  unsigned close_after_flush : 1;
  unsigned is_pipe : 1;
  int hold;               /* >0: writes are gathered, not sent */
  mrpc__frame_fn on_frame;
  mrpc__raw_fn on_raw;    /* NULL: frames */
  mrpc__error_fn on_error;
  mrpc__closed_fn on_closed;
  void *owner;            /* not owned: the struct this stream is embedded in */
};

/* Initialises the handle (TCP, or a pipe when `pipe` is non-zero) on
 * `loop` and the decoder with `limits`. 0 or a libuv error. */
int mrpc__stream_init(mrpc__stream_t *st, uv_loop_t *loop, int pipe,
                      const mrpc_limits_t *limits);
/* Marks the stream connected and starts reading. Flushes what was gathered
 * while connecting. */
int mrpc__stream_start(mrpc__stream_t *st);
/* The buffer to encode frames into; call mrpc__stream_flush afterwards. */
mrpc_buf_t *mrpc__stream_out(mrpc__stream_t *st);
/* Sends what is gathered unless the stream is held or not connected. */
void mrpc__stream_flush(mrpc__stream_t *st);
/* Gather writes until the matching release, which flushes. */
void mrpc__stream_hold(mrpc__stream_t *st);
void mrpc__stream_release(mrpc__stream_t *st);
/* Closes the handle (idempotent); on_closed follows from the loop. */
void mrpc__stream_close(mrpc__stream_t *st);
/* Stops reading and closes once everything gathered has been written. */
void mrpc__stream_close_after_flush(mrpc__stream_t *st);
/* Bytes queued for the peer and not yet taken by the kernel. */
size_t mrpc__stream_queued(const mrpc__stream_t *st);
/* The peer address as "ip:port" (TCP) or the socket path. */
int mrpc__stream_peer(mrpc__stream_t *st, char *buf, size_t len);

#endif
