/* registry/etcd/http.h (internal): JSON-over-HTTP POSTs on the host's libuv
 * loop, through libcurl's multi-socket interface (http.c). The etcd
 * registry backend is its only user, but it knows nothing of etcd: it
 * calls only libcurl, libuv and base/, and reports through the callbacks
 * each post is handed.
 *
 * One mrpc__http_t talks to one host:port and holds any number of requests
 * in flight. Nothing blocks and no thread is started; every callback runs
 * on the loop's thread. A response body is kept in memory up to
 * MRPC_HTTP_MAX_BODY (4 MiB, http.c; beyond it the request fails
 * with MRPC_ETOOBIG) unless the request streams it to a data callback. */
#ifndef MOONRPC_REGISTRY_HTTP_H
#define MOONRPC_REGISTRY_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct mrpc__http_s mrpc__http_t;
typedef struct mrpc__http_req_s mrpc__http_req_t;

/* A request's end, called exactly once unless it is canceled first.
 * status: 0 when an HTTP answer arrived (whatever its code), else a
 * negative MRPC_E* or libuv code: UV_ECONNREFUSED, MRPC_ETIMEDOUT,
 * MRPC_EADDR, MRPC_ENOMEM, MRPC_ETOOBIG, MRPC_ECONNLOST, or the error the
 * data callback returned. code: the HTTP status (0 when none). body, len:
 * the response body, not NUL-terminated (len 0 when there is none or it
 * was streamed), valid only during the call. Called outside every libcurl
 * callback, so it may post, cancel, or close the whole object. */
typedef void (*mrpc__http_cb)(int status, long code, const char *body, size_t len,
                              void *udata);

/* A streamed response's bytes, as they arrive, in pieces of any size.
 * Returns 0 to go on, or a negative MRPC_E* code to abort the request,
 * which then ends with that status. Runs inside libcurl's write callback:
 * it must not post, cancel or close; defer such work (e.g. to a timer). */
typedef int (*mrpc__http_data_cb)(const char *p, size_t n, void *udata);

/* Creates a client for http://host:port (host may be an IPv6 literal).
 * 0, MRPC_EADDR when the URL base does not fit, or MRPC_ENOMEM. The caller
 * must have called curl_global_init() once in the process. */
int mrpc__http_new(uv_loop_t *loop, const char *host, int port, mrpc__http_t **out);

/* Starts POST base+path with `json` as its body (copied) and
 * "Content-Type: application/json". timeout_ms bounds the whole request;
 * 0 means no limit (a stream). on_data NULL: the body is collected and
 * handed to cb; else it goes to on_data as it arrives. *out (if out is not
 * NULL) names the request for mrpc__http_cancel until cb runs. 0, or
 * MRPC_ECLOSED (closing), MRPC_EINVAL (URL too long), MRPC_ENOMEM; on
 * error cb is never called. */
int mrpc__http_post(mrpc__http_t *h, const char *path, const char *json, long timeout_ms,
                    mrpc__http_data_cb on_data, mrpc__http_cb cb, void *udata,
                    mrpc__http_req_t **out);

/* Stops a request in flight and frees it; its callback is not called. Only
 * for a request whose callback has not run yet; not from inside a data
 * callback. */
void mrpc__http_cancel(mrpc__http_req_t *q);

/* Cancels every request in flight (no callbacks), closes every handle,
 * frees h, then calls cb(udata) from a close callback. Safe from inside a
 * completion callback; h must not be used afterwards. */
void mrpc__http_close(mrpc__http_t *h, void (*cb)(void *udata), void *udata);

#endif
