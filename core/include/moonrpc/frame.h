/* moonrpc/frame.h: the rpcx wire frame (protocol version 0), byte for byte.
 *
 * The codec is pure: bytes in, frames out. It knows nothing of sockets.
 *
 *   0      magic 0x08
 *   1      version (copied, never checked)
 *   2      flags: 0x80 response, 0x40 heartbeat, 0x20 oneway,
 *                 (b >> 2) & 7 compress type, b & 3 status type
 *   3      serialize type in the high nibble; low nibble carried through
 *   4..11  seq, uint64 big-endian
 *   12..15 total length: bytes after this field
 *   then four sections, each a uint32 length and bytes: service path,
 *   service method, metadata block (pairs of uint32 len + bytes), payload.
 *
 * Unlike rpcx we check the payload length field against the bytes left in
 * the frame, and refuse frames past the named limits. */
#ifndef MOONRPC_FRAME_H
#define MOONRPC_FRAME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MRPC_MAGIC 0x08
#define MRPC_HEADER_LEN 16

#define MRPC_FLAG_RESPONSE  0x80
#define MRPC_FLAG_HEARTBEAT 0x40
#define MRPC_FLAG_ONEWAY    0x20
#define MRPC_FLAG_COMPRESS  0x1C
#define MRPC_FLAG_STATUS    0x03

enum { MRPC_COMPRESS_NONE = 0, MRPC_COMPRESS_GZIP = 1 };
enum { MRPC_STATUS_NORMAL = 0, MRPC_STATUS_ERROR = 1 };
enum {
  MRPC_SERIALIZE_NONE = 0,
  MRPC_SERIALIZE_JSON = 1,
  MRPC_SERIALIZE_PROTOBUF = 2,
  MRPC_SERIALIZE_MSGPACK = 3,
  MRPC_SERIALIZE_THRIFT = 4
};

/* rpcx compresses a payload only when it is larger than this. */
#define MRPC_GZIP_THRESHOLD 1024

/* Reserved metadata keys. */
#define MRPC_META_ERROR "__rpcx_error__"
#define MRPC_META_TIMEOUT "__ServerTimeout"
#define MRPC_META_AUTH "__AUTH"

/* One metadata pair; pointers are not NUL-terminated. */
typedef struct mrpc_meta_s {
  const char *key;
  size_t key_len;
  const char *val;
  size_t val_len;
} mrpc_meta_t;

/* A frame, decoded or to be encoded. Every pointer borrows memory that the
 * frame does not own: for a decoded frame, the decoder's buffer (valid until
 * the next mrpc_decoder_reserve/feed/reset); for a frame to encode, the
 * caller's. */
typedef struct mrpc_frame_s {
  uint8_t version;
  uint8_t flags;     /* byte 2 as on the wire */
  uint8_t serialize; /* byte 3 as on the wire (type in the high nibble) */
  uint64_t seq;
  const char *path;
  size_t path_len;
  const char *method;
  size_t method_len;
  const mrpc_meta_t *meta;
  size_t meta_count;
  const char *payload; /* the payload after decompression */
  size_t payload_len;
  const char *wire_payload; /* the payload as sent (compressed if gzip) */
  size_t wire_payload_len;
} mrpc_frame_t;

#define mrpc_frame_is_response(f) (((f)->flags & MRPC_FLAG_RESPONSE) != 0)
#define mrpc_frame_is_heartbeat(f) (((f)->flags & MRPC_FLAG_HEARTBEAT) != 0)
#define mrpc_frame_is_oneway(f) (((f)->flags & MRPC_FLAG_ONEWAY) != 0)
#define mrpc_frame_compress(f) (((f)->flags >> 2) & 7)
#define mrpc_frame_status(f) ((f)->flags & MRPC_FLAG_STATUS)
#define mrpc_frame_serialize(f) ((f)->serialize >> 4)

/* Looks up a metadata key. Returns the pair or NULL. */
const mrpc_meta_t *mrpc_frame_meta_get(const mrpc_frame_t *f, const char *key);

/* Appends the encoding of `f` to `out`. The payload written is
 * `wire_payload` when it is non-NULL, else `payload`; the codec never
 * compresses on its own (see mrpc_frame_encode_auto). `flags` are written as
 * given. Returns 0, MRPC_ENOMEM, or MRPC_ETOOBIG when a section length does
 * not fit in 32 bits. */
int mrpc_frame_encode(mrpc_buf_t *out, const mrpc_frame_t *f);

/* Like mrpc_frame_encode, but applies rpcx's compression rule to `payload`:
 * when `gzip` is non-zero and payload_len > MRPC_GZIP_THRESHOLD the payload
 * is gzipped and the compress bits set to gzip; otherwise the compress bits
 * are cleared. `scratch` holds the compressed bytes (reused across calls). */
int mrpc_frame_encode_auto(mrpc_buf_t *out, const mrpc_frame_t *f, int gzip,
                           mrpc_buf_t *scratch);

/* gzip helpers (zlib). Compress appends a gzip member of `in` to `out`.
 * Decompress appends the inflated bytes of one gzip member to `out`,
 * refusing with MRPC_EBOMB once more than `max_out` bytes would be written,
 * and with MRPC_EGZIP on corrupt input. */
int mrpc_gzip_compress(mrpc_buf_t *out, const char *in, size_t len);
int mrpc_gzip_decompress(mrpc_buf_t *out, const char *in, size_t len,
                         size_t max_out);

/* The streaming decoder. Bytes may arrive one at a time or many frames in
 * one read. Embed it, mrpc_decoder_init() it, free it with
 * mrpc_decoder_free(). */
typedef struct mrpc_decoder_s {
  mrpc_limits_t limits;
  mrpc_buf_t in;       /* owned: bytes received and not yet consumed */
  size_t pos;          /* start of the next frame in `in` */
  mrpc_buf_t inflate;  /* owned: decompressed payload of the last frame */
  mrpc_meta_t *meta;   /* owned: metadata pairs of the last frame (they
                          point into `in`) */
  size_t meta_cap;
  int error;           /* sticky: once set, every call returns it */
} mrpc_decoder_t;

/* Initialises a decoder with `limits` (NULL: all defaults; zero fields take
 * their defaults). Allocates nothing. */
void mrpc_decoder_init(mrpc_decoder_t *d, const mrpc_limits_t *limits);
/* Releases the decoder's memory (`in`, `inflate`, `meta`); the struct
 * itself stays the caller's. */
void mrpc_decoder_free(mrpc_decoder_t *d);
/* Drops every buffered byte and clears the sticky error; keeps the memory
 * and the limits. Frames returned earlier become invalid. */
void mrpc_decoder_reset(mrpc_decoder_t *d);

/* Zero-copy input: returns in *p, *n a region of at least `suggested` bytes
 * where the caller may write received bytes, then calls mrpc_decoder_commit
 * with the count written. Fits libuv's alloc_cb/read_cb pair. Returns 0 or
 * MRPC_ENOMEM. Frames returned earlier become invalid. */
int mrpc_decoder_reserve(mrpc_decoder_t *d, size_t suggested, char **p,
                         size_t *n);
void mrpc_decoder_commit(mrpc_decoder_t *d, size_t n);

/* Copying input: appends `len` bytes. Frames returned earlier become
 * invalid. 0 or MRPC_ENOMEM. */
int mrpc_decoder_feed(mrpc_decoder_t *d, const char *data, size_t len);

/* Takes the next complete frame out of the buffered bytes. Returns 1 and
 * fills `f` when a frame is ready, 0 when more bytes are needed, or a
 * negative MRPC_E* on a protocol error (bad magic, a frame past max_frame,
 * a section past the end of the frame, metadata past its limits, an unknown
 * compress type, corrupt gzip, a gzip bomb). A header that announces a frame
 * past max_frame is refused as soon as its 16 bytes arrive. Errors are
 * sticky. `f` stays valid until the next reserve/feed on this decoder,
 * except its metadata array and inflated payload, which the next call of
 * mrpc_decoder_next reuses: finish with one frame before taking the next. */
int mrpc_decoder_next(mrpc_decoder_t *d, mrpc_frame_t *f);

/* Number of bytes buffered that belong to an incomplete frame. */
size_t mrpc_decoder_pending(const mrpc_decoder_t *d);

/* Decodes exactly one whole frame held in `data` (no trailing bytes). A
 * convenience over the streaming decoder; `d` keeps the memory that `f`
 * points into. Resets `d` first (see mrpc_decoder_reset). A truncated
 * frame or trailing bytes give MRPC_EPROTO. Returns 0 or a negative
 * MRPC_E*. */
int mrpc_frame_decode(mrpc_decoder_t *d, const char *data, size_t len,
                      mrpc_frame_t *f);

#ifdef __cplusplus
}
#endif
#endif
