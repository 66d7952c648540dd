/* registry/etcd/etcd.h (internal): the etcd v3 registry backend (scheme
 * "etcd"). It registers instances under leases it keeps alive, lists a
 * service's instances with range reads, and watches a service's prefix,
 * all through etcd's JSON gateway (/v3/..., every call a POST, keys and
 * values base64, 64-bit integers as JSON strings).
 *
 * Its files call one way, top to bottom:
 *   etcd.c           open, close and the ops table (registry.c's entry)
 *   etcd_register.c  register, update, unregister; the leases' keepalive
 *   etcd_watch.c     list and watch
 *   etcd_op.c        the backend's state: caller operations, posts, the
 *                    deferred reports, liveness and the last close
 *   etcd_json.c      the gateway's messages, built and read without I/O
 *   http.c           JSON-over-HTTP on the loop (libcurl multi-socket);
 *                    knows nothing of etcd (http.h)
 * Below the folder it may call base/ (buffers, base64, strndup), cJSON,
 * libcurl (http.c, and curl_global_init in etcd.c) and registry/key.c
 * (mrpc__reg_key); never registry.c, which only reads mrpc__etcd_ops.
 * Nothing lower reports upward by a call: http.c reports through the
 * callbacks each post hands it, and the last close reports through the
 * registry's close callback kept in etcd_t. */
#ifndef MOONRPC_REGISTRY_ETCD_H
#define MOONRPC_REGISTRY_ETCD_H

#include <cjson/cJSON.h>
#include "base/base.h"
#include "registry/registry.h"
#include "registry/etcd/http.h"

#define REQ_TIMEOUT_MS 5000L   /* one ordinary call */
#define BYE_TIMEOUT_MS 1000L   /* the goodbyes of close() */
#define BACKOFF_MIN_MS 200u
#define BACKOFF_MAX_MS 5000u

typedef struct etcd_s etcd_t;
typedef struct inst_s inst_t;   /* a registered instance: etcd_register.c */
typedef struct watch_s watch_t; /* a watch: etcd_watch.c */

enum { OP_UPDATE, OP_UNREG, OP_LIST, OP_BYE };

/* One caller's operation (or a goodbye of close()), linked in e->ops from
 * mrpc__etcd_op_new until it ends; whoever unlinks it frees it with
 * mrpc__etcd_op_free. */
typedef struct op_s {
  struct op_s *prev, *next;
  etcd_t *e;              /* borrowed: the backend it belongs to */
  int kind;
  mrpc__http_req_t *req;  /* in flight; canceled (freed) by whoever drops the op */
  char *key;              /* owned, freed by mrpc__etcd_op_free: list's prefix */
  char lease[32];         /* unreg: revoked after the delete */
  int status;
  int ready;              /* finished without HTTP: reported by the defer timer */
  mrpc_reg_cb cb;
  mrpc_reg_list_cb lcb;
  void *udata;            /* the caller's, never freed here */
} op_t;

/* The backend's state (r->backend), freed by mrpc__etcd_live_down once its
 * last handle has closed. */
struct etcd_s {
  mrpc_registry_t *r;     /* borrowed: the registry that owns this backend */
  mrpc__http_t *http;     /* owned: closed by the last step of close() */
  uv_timer_t defer;       /* reports ready ops outside the call that made them */
  inst_t *insts;          /* owned: each freed in its timer's close callback */
  op_t *ops;              /* owned: ended with MRPC_ECLOSED when the last handle closes */
  watch_t *watches;       /* owned: each freed in its timer's close callback */
  int live;               /* open handles (timers, http) */
  int closing, byes;      /* close() called; goodbyes in flight */
  mrpc_reg_cb close_cb;   /* registry.c's, called once everything is freed */
  void *close_udata;
};

#define LINK(head, x)                                                      \
  do {                                                                     \
    (x)->prev = NULL;                                                      \
    (x)->next = (head);                                                    \
    if (head) (head)->prev = (x);                                          \
    (head) = (x);                                                          \
  } while (0)
#define UNLINK(head, x)                                                    \
  do {                                                                     \
    if ((x)->prev) (x)->prev->next = (x)->next;                            \
    else (head) = (x)->next;                                               \
    if ((x)->next) (x)->next->prev = (x)->prev;                            \
  } while (0)

/* The delay after one more failure: 0.2 s, doubling up to 5 s. */
static inline unsigned next_backoff(unsigned b) {
  return b == 0 ? BACKOFF_MIN_MS : b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
}

/* ---- the gateway's messages (etcd_json.c): pure, no I/O ------------------ */

/* Adds `name: base64(s[0..n))` to o. 0 or MRPC_ENOMEM. */
int mrpc__etcd_add_b64(cJSON *o, const char *name, const char *s, size_t n);

/* o's string member `name`, or NULL when absent or not a string. */
const char *mrpc__etcd_jstr(const cJSON *o, const char *name);

/* Request bodies; each NULL when out of memory (mrpc__etcd_post takes that
 * NULL and fails with MRPC_ENOMEM). {"ID": lease}; a put of key=meta under
 * lease (none when lease is ""); {"key": key}; a grant of ttl_s seconds. */
cJSON *mrpc__etcd_q_lease(const char *lease);
cJSON *mrpc__etcd_q_put(const char *key, const char *meta, const char *lease);
cJSON *mrpc__etcd_q_key(const char *key);
cJSON *mrpc__etcd_q_grant(unsigned ttl_s);

/* A range read over every key under prefix (which must not be empty), and
 * a watch's create_request over the same range, in *out (free it with
 * cJSON_Delete). 0, MRPC_EINVAL (prefix empty or too long) or MRPC_ENOMEM;
 * *out is NULL on error. */
int mrpc__etcd_q_range(const char *prefix, cJSON **out);
int mrpc__etcd_q_watch(const char *prefix, cJSON **out);

/* The JSON object of a successful answer (free it with cJSON_Delete), or
 * NULL with *err set: the transport's status, MRPC_EREMOTE for an HTTP
 * code other than 200, MRPC_EPROTO for a body that is not a JSON object. */
cJSON *mrpc__etcd_answer(int status, long code, const char *body, size_t len, int *err);

/* A grant's answer j: copies its lease ID into buf (size bytes) and
 * returns 0, or MRPC_EPROTO when it has none or it does not fit. */
int mrpc__etcd_grant_id(const cJSON *j, char *buf, size_t size);

/* 1 when the keepalive answer j (NULL allowed) says the lease lives on (a
 * TTL other than "0"), else 0. */
int mrpc__etcd_keepalive_ok(const cJSON *j);

/* The instances of a range answer. The entries' strings point into strs
 * and into the service name given to mrpc__etcd_range_parse. */
typedef struct {
  mrpc_reg_entry_t *list; /* owned, freed by mrpc__etcd_range_free */
  size_t n;
  char **strs;            /* owned, 3 per entry (key, value, service or NULL),
                           * freed with each string by mrpc__etcd_range_free */
} etcd_range_t;

/* Reads the kvs of the range answer j as entries of `service`; service ""
 * means every service, each entry then named by its key base/Service/addr.
 * 0, MRPC_EPROTO (not a range answer, or a key or value not base64) or
 * MRPC_ENOMEM. Free *out with mrpc__etcd_range_free in every case. */
int mrpc__etcd_range_parse(const cJSON *j, const char *service, etcd_range_t *out);
void mrpc__etcd_range_free(etcd_range_t *rg);

/* What one line of a watch stream (n bytes, without its '\n') says: a
 * mask of WATCH_CREATED and WATCH_EVENTS (0 for a blank line or a progress
 * notice), or MRPC_EREMOTE for an error object, a canceled watch, or a
 * line that is not a watch response. */
enum { WATCH_CREATED = 1, WATCH_EVENTS = 2 };
int mrpc__etcd_watch_line(const char *p, size_t n);

/* ---- the backend's state and operations (etcd_op.c) ---------------------- */

/* Creates the backend of r (r->backend) talking to host:port: its HTTP
 * client and defer timer. 0, MRPC_EADDR or MRPC_ENOMEM. */
int mrpc__etcd_new(mrpc_registry_t *r, const char *host, int port);

/* A new op linked into e->ops (key copied when not NULL); NULL when out of
 * memory. */
op_t *mrpc__etcd_op_new(etcd_t *e, int kind, const char *key, mrpc_reg_cb cb, void *udata);

/* Frees an op already unlinked. */
void mrpc__etcd_op_free(op_t *o);

/* Unlinks and frees an op without reporting it (its post failed). */
void mrpc__etcd_op_drop(op_t *o);

/* Ends an op that is still linked: unlinks, reports status to its cb,
 * frees. */
void mrpc__etcd_op_end(op_t *o, int status);

/* Marks an op finished with status without HTTP. The defer timer reports
 * it soon; while closing, the last close does (the timer is stopped). */
void mrpc__etcd_op_ready(op_t *o, int status);

/* POSTs the JSON object o to path; o is consumed whatever happens, and
 * NULL fails with MRPC_ENOMEM. The rest as mrpc__http_post. */
int mrpc__etcd_post(etcd_t *e, const char *path, cJSON *o, long timeout,
                    mrpc__http_data_cb on_data, mrpc__http_cb cb, void *udata,
                    mrpc__http_req_t **out);

/* Closing: cancels the requests of every op (the ops stay linked, to end
 * with the close) and stops the defer timer. */
void mrpc__etcd_ops_cancel(etcd_t *e);

/* Closing: one goodbye POST (q consumed), given BYE_TIMEOUT_MS. */
void mrpc__etcd_bye(etcd_t *e, const char *path, cJSON *q);

/* Closing: closes the HTTP client and the defer timer once no goodbye is
 * in flight (now, or when the last one ends). */
void mrpc__etcd_finish(etcd_t *e);

/* One open handle (a timer, the HTTP client) of e has closed. The last one
 * ends the ops still pending with MRPC_ECLOSED, frees e and reports the
 * close. */
void mrpc__etcd_live_down(etcd_t *e);

/* ---- register, update, unregister (etcd_register.c) ---------------------- */

int mrpc__etcd_reg(mrpc_registry_t *r, const char *service, const char *addr,
                   const char *meta, unsigned ttl_s, mrpc_reg_cb cb, void *udata);
int mrpc__etcd_update(mrpc_registry_t *r, const char *service, const char *addr,
                      const char *meta, mrpc_reg_cb cb, void *udata);
int mrpc__etcd_unreg(mrpc_registry_t *r, const char *service, const char *addr,
                     mrpc_reg_cb cb, void *udata);

/* Closing: says goodbye for every instance (delete its key, revoke its
 * lease), ends a first report still due with MRPC_ECLOSED, and drops them. */
void mrpc__etcd_insts_bye(etcd_t *e);

/* ---- list and watch (etcd_watch.c) --------------------------------------- */

int mrpc__etcd_list(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                    void *udata);
int mrpc__etcd_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                     void *udata, mrpc_watch_t **out);
void mrpc__etcd_unwatch(mrpc_watch_t *hw);

/* Closing: ends every watch (no more reports). */
void mrpc__etcd_unwatch_all(etcd_t *e);

#endif
