/* moonrpc/common.h: error codes, the growable byte buffer and the named
 * limits shared by every part of libmoonrpc.
 *
 * Errors follow libuv: a function returns 0 on success or a negative code.
 * libuv's own codes (UV_E*) pass through unchanged; moonrpc adds its own
 * below UV's range so the two never collide. mrpc_err_name() and
 * mrpc_strerror() name both kinds. */
#ifndef MOONRPC_COMMON_H
#define MOONRPC_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* moonrpc's own error codes. Each is negative and far from libuv's range. */
#define MRPC_ERRNO_MAP(XX)                                                  \
  XX(EPROTO,     -30001, "malformed frame")                                 \
  XX(EMAGIC,     -30002, "bad magic number")                                \
  XX(ETOOBIG,    -30003, "frame larger than max_frame")                     \
  XX(EMETA,      -30004, "too many metadata pairs or bytes")                \
  XX(ECOMPRESS,  -30005, "unknown compress type")                           \
  XX(EGZIP,      -30006, "corrupt gzip payload")                            \
  XX(EBOMB,      -30007, "decompressed payload larger than max_decompressed")\
  XX(ECODEC,     -30008, "unknown serialize type")                          \
  XX(EDECODE,    -30009, "payload cannot be decoded")                       \
  XX(EENCODE,    -30010, "value cannot be encoded")                         \
  XX(EDEPTH,     -30011, "nesting deeper than max_depth")                   \
  XX(ETIMEDOUT,  -30012, "call timed out")                                  \
  XX(ECANCELED,  -30013, "call canceled")                                   \
  XX(ECONNLOST,  -30014, "connection lost")                                 \
  XX(ECLOSED,    -30015, "object is closed")                                \
  XX(ENOSERVICE, -30016, "unknown service")                                 \
  XX(ENOMETHOD,  -30017, "unknown method")                                  \
  XX(EREMOTE,    -30018, "remote error")                                    \
  XX(EADDR,      -30019, "bad address")                                     \
  XX(ENOMEM,     -30020, "out of memory")                                   \
  XX(EBUSY,      -30021, "too many connections or calls")                   \
  XX(EAUTH,      -30022, "authentication failed")                           \
  XX(EINVAL,     -30023, "invalid argument")                                \
  XX(EHEARTBEAT, -30024, "heartbeat not answered in time")                  \
  XX(ESHUTDOWN,  -30025, "server is shutting down")                         \
  XX(ENOSERVER,  -30026, "no server available")                            \
  XX(ESLOWPEER,  -30027, "peer does not read: write queue past max_write_queue")

enum {
#define XX(name, code, msg) MRPC_##name = (code),
  MRPC_ERRNO_MAP(XX)
#undef XX
};

/* The short name of an error code ("EPROTO", or libuv's "ECONNREFUSED").
 * Returns a static string; never NULL. */
const char *mrpc_err_name(int err);

/* A one-line English description of an error code. Static string. */
const char *mrpc_strerror(int err);

/* A growable byte buffer. The struct is owned by its user (usually embedded);
 * `data` is malloc'ed by the buffer functions and released by
 * mrpc_buf_free(). Zero-initialised memory is a valid empty buffer. */
typedef struct mrpc_buf_s {
  char *data;
  size_t len;
  size_t cap;
} mrpc_buf_t;

/* Ensures room for `extra` more bytes after `len`. 0 or MRPC_ENOMEM. */
int mrpc_buf_reserve(mrpc_buf_t *b, size_t extra);
/* Appends `n` bytes. 0 or MRPC_ENOMEM. */
int mrpc_buf_append(mrpc_buf_t *b, const void *p, size_t n);
/* Appends a big-endian uint32 / uint64. 0 or MRPC_ENOMEM. */
int mrpc_buf_put_u32(mrpc_buf_t *b, uint32_t v);
int mrpc_buf_put_u64(mrpc_buf_t *b, uint64_t v);
/* Drops the first `n` bytes, moving the rest to the front. */
void mrpc_buf_consume(mrpc_buf_t *b, size_t n);
/* Releases the memory; the buffer is empty and reusable afterwards. */
void mrpc_buf_free(mrpc_buf_t *b);

/* Big-endian readers for untrusted input; `p` must hold 4 or 8 bytes. */
uint32_t mrpc_get_u32(const void *p);
uint64_t mrpc_get_u64(const void *p);

/* Limits on untrusted input. Every one has a name, a default (below) and a
 * test. A limit of 0 means the default. */
typedef struct mrpc_limits_s {
  uint32_t max_frame;        /* whole frame, header included */
  uint32_t max_meta_pairs;   /* metadata pairs in one frame */
  uint32_t max_meta_bytes;   /* the metadata block, in bytes */
  uint32_t max_decompressed; /* a gzip payload once inflated */
  uint32_t max_depth;        /* nesting of arrays/maps in a payload */
  uint32_t max_conns;        /* connections a server accepts at once */
  uint32_t max_write_queue;  /* bytes queued for a peer that does not read:
                              * a server stops reading the connection, a
                              * client refuses new calls (MRPC_ESLOWPEER);
                              * see server.h and client.h */
} mrpc_limits_t;

#define MRPC_DEFAULT_MAX_FRAME        (16u * 1024 * 1024)
#define MRPC_DEFAULT_MAX_META_PAIRS   64u
#define MRPC_DEFAULT_MAX_META_BYTES   (64u * 1024)
#define MRPC_DEFAULT_MAX_DECOMPRESSED (16u * 1024 * 1024)
#define MRPC_DEFAULT_MAX_DEPTH        64u
#define MRPC_DEFAULT_MAX_CONNS        10000u
#define MRPC_DEFAULT_MAX_WRITE_QUEUE  (4u * 1024 * 1024)

/* Fills every zero field of `l` with its default. */
void mrpc_limits_default(mrpc_limits_t *l);

#ifdef __cplusplus
}
#endif
#endif
