/* moonrpc/client.h: one client connection to one rpcx server.
 *
 * A client keeps a table seq -> pending call. Every call ends exactly once,
 * through its callback: with the reply frame, or with an error (timeout,
 * cancel, connection lost, connect failure, client closed). The connection
 * is opened on the first call and re-opened by the first call after it
 * breaks. Calls made while a callback is running are sent together when it
 * returns.
 *
 * Like any libuv host, the program must ignore SIGPIPE; a write to a reset
 * connection then ends the pending calls with MRPC_ECONNLOST. */
#ifndef MOONRPC_CLIENT_H
#define MOONRPC_CLIENT_H

#include <uv.h>
#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrpc_client_s mrpc_client_t;

/* Completion of a call. status 0: `reply` is the response frame (its status
 * may be MRPC_STATUS_ERROR: a remote error, see mrpc_frame_error); `reply`
 * and its memory are valid only during the callback. status < 0: no reply;
 * MRPC_ETIMEDOUT, MRPC_ECANCELED, MRPC_ECONNLOST, MRPC_ECLOSED,
 * MRPC_EHEARTBEAT or a libuv connect error such as UV_ECONNREFUSED. */
typedef void (*mrpc_call_cb)(int status, const mrpc_frame_t *reply,
                             void *udata);

/* A frame the server pushed (rpcx's Server.SendMessage: a oneway request). */
typedef void (*mrpc_push_cb)(mrpc_client_t *c, const mrpc_frame_t *msg,
                             void *udata);

typedef void (*mrpc_client_cb)(mrpc_client_t *c, void *udata);

typedef struct mrpc_client_opts_s {
  mrpc_limits_t limits;            /* zero fields take defaults */
  uint64_t connect_timeout_ms;     /* 0: 5000 */
  uint64_t heartbeat_interval_ms;  /* 0: no heartbeat */
  uint64_t heartbeat_timeout_ms;   /* 0: same as the interval */
  mrpc_push_cb on_push;
  void *push_udata;
} mrpc_client_opts_t;

/* One call. Strings need not be NUL-terminated beyond what the lengths say;
 * everything is copied before mrpc_client_call returns. */
typedef struct mrpc_call_args_s {
  const char *service;
  const char *method;
  const mrpc_meta_t *meta;
  size_t meta_count;
  const char *payload; /* serialized in `serialize` */
  size_t payload_len;
  uint8_t serialize;   /* MRPC_SERIALIZE_* */
  int gzip;            /* compress when the payload is over 1024 bytes */
  int oneway;          /* no reply wanted: the callback is not called */
  uint64_t timeout_ms; /* 0: none; else sent as __ServerTimeout too */
} mrpc_call_args_t;

/* Creates a client for `address` ("tcp@host:port", "host:port",
 * "unix@/path"). Nothing is connected yet. 0, MRPC_EADDR or MRPC_ENOMEM.
 * The client's handles keep the loop running only while a call or a ping
 * is pending: an idle connection (heartbeats included) lets uv_run return,
 * and a server push reaches it only while something else runs the loop. */
int mrpc_client_new(uv_loop_t *loop, const char *address,
                    const mrpc_client_opts_t *opts, mrpc_client_t **out);

/* Starts connecting now instead of on the first call. */
int mrpc_client_connect(mrpc_client_t *c);

/* Sends a call. On success returns 0, stores the call's id in *id (may be
 * NULL) and `cb` will be called exactly once, never from inside this
 * function. On failure returns a negative code and `cb` is never called.
 *
 * Backpressure: when the bytes queued on the connection and not yet taken
 * by the server reach limits.max_write_queue (a server that does not read),
 * the call fails at once with MRPC_ESLOWPEER and the connection stays up;
 * calls succeed again once the server has read the queue. The host makes
 * the calls, so refusing them is the one way to stop it that neither grows
 * memory nor blocks; it can retry later, or elsewhere (an xclient treats it
 * as any failed call). Calls already sent are not affected. */
int mrpc_client_call(mrpc_client_t *c, const mrpc_call_args_t *args,
                     mrpc_call_cb cb, void *udata, uint64_t *id);

/* Ends a pending call now with MRPC_ECANCELED; a late reply is ignored.
 * 0, or MRPC_EINVAL when no such call is pending (it already ended). */
int mrpc_client_cancel(mrpc_client_t *c, uint64_t id);

/* Sends one heartbeat now; `cb` gets the echo. The measured round trip is
 * then available from mrpc_client_rtt. */
int mrpc_client_ping(mrpc_client_t *c, uint64_t timeout_ms, mrpc_call_cb cb,
                     void *udata);

/* The last measured heartbeat round trip in microseconds (0: none yet). */
uint64_t mrpc_client_rtt(const mrpc_client_t *c);

/* 1 when connected, 0 otherwise. */
int mrpc_client_connected(const mrpc_client_t *c);
/* Number of calls waiting for a reply. */
size_t mrpc_client_pending(const mrpc_client_t *c);
/* The address it was created with. */
const char *mrpc_client_address(const mrpc_client_t *c);

/* Ends every pending call with MRPC_ECLOSED, closes the connection and
 * frees the client once its handles are closed, then calls `cb` (may be
 * NULL). Safe inside a call's callback. Do not use `c` afterwards. */
void mrpc_client_close(mrpc_client_t *c, mrpc_client_cb cb, void *udata);

/* Gathers the client's writes until the matching uncork, which sends them
 * with one write. */
void mrpc_client_cork(mrpc_client_t *c);
void mrpc_client_uncork(mrpc_client_t *c);

/* The __rpcx_error__ text of an error reply, or NULL. */
const char *mrpc_frame_error(const mrpc_frame_t *f, size_t *len);

/* Parses "tcp@host:port", "host:port" or "unix@path" into its network
 * ("tcp"/"unix", static string) and the rest, copied into buf. */
int mrpc_addr_split(const char *address, const char **network, char *buf,
                    size_t len);

#ifdef __cplusplus
}
#endif
#endif
