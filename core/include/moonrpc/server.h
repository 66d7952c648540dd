/* moonrpc/server.h: an rpcx server on a libuv loop that the host owns.
 *
 * A server holds services (name -> methods -> C handler), listens on TCP or
 * unix sockets, decodes frames, answers heartbeats, checks auth, and hands
 * each request to its handler as an mrpc_req_t. The handler answers at once
 * or later (a deferred reply); either way it calls exactly one of
 * mrpc_req_reply / mrpc_req_error / mrpc_req_drop, which releases the
 * request. Replies produced while the server is handling one read are sent
 * with one write when that read is done.
 *
 * Like any libuv host, the program must ignore SIGPIPE (signal(SIGPIPE,
 * SIG_IGN)); a write to a reset connection then fails with an error
 * instead of killing the process. */
#ifndef MOONRPC_SERVER_H
#define MOONRPC_SERVER_H

#include <uv.h>
#include "frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mrpc_server_s mrpc_server_t;
typedef struct mrpc_req_s mrpc_req_t;
typedef struct mrpc_conn_s mrpc_conn_t;

/* A method handler. `req` is valid until the handler (now or later) answers
 * it with mrpc_req_reply, mrpc_req_error or mrpc_req_drop. */
typedef void (*mrpc_handler_fn)(mrpc_req_t *req, void *udata);

/* The auth hook: returns 0 to accept, non-zero to refuse; on refusal it may
 * write a message into `err` (errlen bytes). `token` is the __AUTH value
 * (NULL when absent). A refused request gets an error reply and its
 * connection is closed once the reply is written, as rpcx does. */
typedef int (*mrpc_auth_fn)(mrpc_req_t *req, const char *token,
                            size_t token_len, void *udata, char *err,
                            size_t errlen);

/* Log sink for events that have nobody to answer (a failing oneway call, a
 * connection closed for a protocol error). `level` 0 info, 1 warning. */
typedef void (*mrpc_log_fn)(void *udata, int level, const char *msg);

typedef void (*mrpc_server_cb)(mrpc_server_t *s, void *udata);

/* The foreign hook (see mrpc_server_set_foreign): `data` holds bytes the
 * peer sent; data NULL and len 0 say the connection has closed (the last
 * call for `c`). */
typedef void (*mrpc_foreign_fn)(mrpc_conn_t *c, const char *data, size_t len,
                                void *udata);

typedef struct mrpc_server_opts_s {
  mrpc_limits_t limits;   /* zero fields take defaults */
  mrpc_auth_fn auth;      /* NULL: no auth */
  void *auth_udata;
  mrpc_log_fn log;        /* NULL: logs go to stderr */
  void *log_udata;
  int no_reflection;      /* 1: do not answer Reflection.Services */
  int reuseport;          /* 1: TCP listeners set SO_REUSEPORT, so several
                           * servers (on several loops, in threads or
                           * processes) listen on one address and the kernel
                           * spreads new connections over them. With port 0
                           * each would get its own port: listen one first,
                           * then the others on the port it got. */
  uint64_t idle_timeout_ms; /* 0 (the default, as rpcx): off. Else a
                           * connection that has sent nothing for this
                           * long is closed: any bytes received count
                           * (requests, heartbeats), and so does a call in
                           * flight on it (it is idle from its answer on)
                           * and, while backpressure has paused reading,
                           * the peer taking our output. Checked every
                           * quarter of the timeout, so a connection goes
                           * between 1 and 1.25 timeouts after its last
                           * traffic. */
} mrpc_server_opts_t;

/* The reflection service every server answers unless opts.no_reflection:
 * "Reflection.Services", no arguments, replies in the caller's codec
 * (msgpack or JSON) with {services: [{name, methods: [sorted names],
 * metadata}]}, every service but itself, sorted by name. */
#define MRPC_REFLECTION_SERVICE "Reflection"

/* Creates a server on `loop` (which the host owns and runs). `opts` may be
 * NULL. The server owns its memory until mrpc_server_close's callback.
 * Returns 0 or MRPC_ENOMEM. */
int mrpc_server_new(uv_loop_t *loop, const mrpc_server_opts_t *opts,
                    mrpc_server_t **out);

/* Adds `service`.`method` with its handler. Names are copied. Registering
 * the same pair again replaces the handler. 0, MRPC_EINVAL or MRPC_ENOMEM. */
int mrpc_server_register(mrpc_server_t *s, const char *service,
                         const char *method, mrpc_handler_fn fn, void *udata);

/* Sets the rpcx metadata ("weight=10&group=a") that reflection reports for
 * a registered service; copied. 0, MRPC_ENOSERVICE or MRPC_ENOMEM. */
int mrpc_server_set_metadata(mrpc_server_t *s, const char *service,
                             const char *meta);

/* Installs (or with fn NULL removes) the auth hook after creation. */
void mrpc_server_set_auth(mrpc_server_t *s, mrpc_auth_fn fn, void *udata);

/* Installs (fn NULL removes) the handler for requests whose service is
 * not registered, instead of rpcx's "can't find service" error. The
 * handler gets every such request whatever its method or serialize type;
 * a gateway forwards them. */
void mrpc_server_set_fallback(mrpc_server_t *s, mrpc_handler_fn fn,
                              void *udata);

/* Installs the foreign hook: a new connection whose first byte is not
 * rpcx's magic (0x08) is handed to `fn` with everything it sends, so one
 * port can answer rpcx and, say, HTTP. The host answers through
 * mrpc_conn_write and ends with mrpc_conn_close. Without a hook such a
 * connection is a protocol error and is closed. Set it before listening. */
void mrpc_server_set_foreign(mrpc_server_t *s, mrpc_foreign_fn fn,
                             void *udata);

/* Removes a whole service (requests to it then get "can't find service").
 * 0 or MRPC_ENOSERVICE. */
int mrpc_server_unregister(mrpc_server_t *s, const char *service);

/* Starts listening. `network` is "tcp" or "unix"; `address` is "host:port"
 * (":port" means 0.0.0.0; port 0 picks a free port) or a socket path. May be
 * called more than once for several listeners. Returns 0, MRPC_EADDR, or a
 * libuv error (UV_EADDRINUSE ...). */
int mrpc_server_listen(mrpc_server_t *s, const char *network,
                       const char *address);

/* Writes the address of listener `i` as "tcp@127.0.0.1:8972" or
 * "unix@/path" into buf. 0, MRPC_EINVAL (no such listener) or UV_ENOBUFS. */
int mrpc_server_address(mrpc_server_t *s, int i, char *buf, size_t len);

/* Graceful shutdown: stops accepting, lets calls in flight finish (and
 * foreign requests between mrpc_conn_work_begin and _end), closes
 * every connection once its replies are written, then calls `cb` (never
 * from inside this function). Calls still running after `timeout_ms` are
 * abandoned (their replies dropped), and connections whose peer has not
 * taken its replies `timeout_ms` after that are closed by force.
 * Requests arriving meanwhile get the error "server is shutting down". The
 * server stays allocated: free it with mrpc_server_close. */
int mrpc_server_shutdown(mrpc_server_t *s, uint64_t timeout_ms,
                         mrpc_server_cb cb, void *udata);

/* Closes listeners and connections at once and frees the server once every
 * handle is closed and every request released; then calls `cb` (may be
 * NULL) with NULL as the server, since it is already freed. Requests still held by handlers stay valid: answering them is
 * allowed and drops the answer. Do not use `s` after this call. */
void mrpc_server_close(mrpc_server_t *s, mrpc_server_cb cb, void *udata);

/* Number of open connections / requests being handled. */
size_t mrpc_server_conn_count(const mrpc_server_t *s);
size_t mrpc_server_inflight(const mrpc_server_t *s);

/* Backpressure. When the output queued for one connection (answers the
 * peer has not read yet) reaches limits.max_write_queue, the server stops
 * reading that connection's requests; it reads again once the queue has
 * drained to half the limit. A peer that sends requests and never reads
 * therefore costs at most about max_write_queue of memory, and its
 * connection stays open. If the queue still grows past max_write_queue +
 * max_frame (answers to calls already running, pushes), the connection is
 * closed with MRPC_ESLOWPEER (logged). */

/* A snapshot of the server's counters (the sums walk every connection). */
typedef struct mrpc_server_stats_s {
  size_t conns;         /* connections not yet freed */
  size_t inflight;      /* as mrpc_server_inflight */
  size_t queued;        /* output bytes queued over all connections */
  size_t queued_peak;   /* the most one connection has ever had queued */
  size_t paused;        /* connections whose reading backpressure paused */
  uint64_t refused;     /* connections refused by max_conns */
  uint64_t idle_closed; /* connections closed by idle_timeout_ms */
} mrpc_server_stats_t;

void mrpc_server_stats(const mrpc_server_t *s, mrpc_server_stats_t *out);

/* ---- requests ---------------------------------------------------------- */

/* The request frame: path, method, metadata and (decompressed) payload.
 * During the handler call they point into the connection's read buffer;
 * when the handler returns without answering, the request takes its own
 * copy. So a handler that answers later must call mrpc_req_frame() again
 * then, not keep pointers from the first call. The pointers it returns stay
 * valid until the request is answered. */
const mrpc_frame_t *mrpc_req_frame(const mrpc_req_t *req);

/* The serialize type of the request (0 raw, 1 JSON, 3 msgpack). */
int mrpc_req_serialize(const mrpc_req_t *req);

/* The __ServerTimeout the caller sent, in ms (0: none), and the deadline as
 * uv_now() milliseconds of the server's loop (0: none). */
uint64_t mrpc_req_timeout(const mrpc_req_t *req);
uint64_t mrpc_req_deadline(const mrpc_req_t *req);

/* The peer's address ("127.0.0.1:53412", or the socket path for unix). */
int mrpc_req_remote(const mrpc_req_t *req, char *buf, size_t len);

/* The limits of the server that received the request (valid as long as the
 * request is). Handlers use max_depth when decoding payloads. */
const mrpc_limits_t *mrpc_req_limits(const mrpc_req_t *req);

/* 1 when the caller asked for no answer. */
int mrpc_req_oneway(const mrpc_req_t *req);

/* Answers with a normal reply: `payload` is already serialized in the
 * request's serialize type; it is gzipped when the request was gzipped and
 * it is larger than 1024 bytes, as rpcx does. `meta` becomes the reply
 * metadata. All bytes are copied. Releases `req`. Returns 0, or
 * MRPC_ECONNLOST when the connection is gone (the answer is dropped). */
int mrpc_req_reply(mrpc_req_t *req, const char *payload, size_t len,
                   const mrpc_meta_t *meta, size_t nmeta);

/* Answers with an error: status 1 and `msg` in __rpcx_error__. `payload`
 * (may be NULL) is sent too, as rpcx sends the reply object beside a
 * service error. A oneway request is not answered; the error is logged.
 * Releases `req`. */
int mrpc_req_error(mrpc_req_t *req, const char *msg, const char *payload,
                   size_t len, const mrpc_meta_t *meta, size_t nmeta);

/* Releases `req` without answering. */
void mrpc_req_drop(mrpc_req_t *req);

/* ---- connections -------------------------------------------------------- */

/* The connection a request came on; borrowed, valid while `req` is. */
mrpc_conn_t *mrpc_req_conn(const mrpc_req_t *req);

/* Keeps the connection's memory (not the connection) alive past the
 * request, e.g. to push to it later; each hold needs one release. A held
 * connection also keeps its server's memory: release every hold before or
 * after mrpc_server_close, the server is freed after the last one. */
void mrpc_conn_hold(mrpc_conn_t *c);
void mrpc_conn_release(mrpc_conn_t *c);

/* Foreign connections: a request the host's protocol read (an HTTP
 * request, say) and has yet to answer. Between begin and end it counts
 * as a call in flight: mrpc_server_shutdown waits for it (up to its
 * timeout) before it closes connections, so the answer the host writes
 * before mrpc_conn_work_end goes out. begin returns 0, or MRPC_ECLOSED
 * when the server is shutting down or closing: start nothing new, answer
 * "shutting down" and close. Each 0 needs exactly one end, which also
 * holds the connection's and the server's memory until then (as
 * mrpc_conn_hold does). */
int mrpc_conn_work_begin(mrpc_conn_t *c);
void mrpc_conn_work_end(mrpc_conn_t *c);

/* 1 while the connection is open and writable. */
int mrpc_conn_is_open(const mrpc_conn_t *c);

/* The server the connection belongs to. */
mrpc_server_t *mrpc_conn_server(const mrpc_conn_t *c);

/* The peer's address, as mrpc_req_remote. */
int mrpc_conn_peer(mrpc_conn_t *c, char *buf, size_t len);

/* A host pointer per connection (NULL at first). */
void mrpc_conn_set_data(mrpc_conn_t *c, void *data);
void *mrpc_conn_get_data(const mrpc_conn_t *c);

/* Server push, as rpcx's Server.SendMessage: sends `msg` (its path, method,
 * metadata, payload and serialize byte; the rest is ignored) as a oneway
 * request with the server's next push sequence number, gzipped by rpcx's
 * rule when `gzip` is set. The client sees it through its on_push
 * callback. Bytes are copied. 0, MRPC_ECONNLOST (closed), MRPC_EINVAL (a
 * foreign connection) or MRPC_ENOMEM. */
int mrpc_conn_push(mrpc_conn_t *c, const mrpc_frame_t *msg, int gzip);

/* Gathers the connection's writes until the matching uncork. */
void mrpc_conn_cork(mrpc_conn_t *c);
void mrpc_conn_uncork(mrpc_conn_t *c);

/* Foreign connections only: queues raw bytes. 0 or MRPC_ECONNLOST. */
int mrpc_conn_write(mrpc_conn_t *c, const char *data, size_t len);

/* Closes the connection once what is queued is written. The foreign hook
 * then gets its closing call. */
void mrpc_conn_close(mrpc_conn_t *c);

/* Per-request user pointer, for the handler's own bookkeeping. */
void mrpc_req_set_data(mrpc_req_t *req, void *data);
void *mrpc_req_get_data(const mrpc_req_t *req);

#ifdef __cplusplus
}
#endif
#endif
