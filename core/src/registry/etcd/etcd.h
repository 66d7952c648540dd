/* registry_etcd.h (internal): what the two files of the etcd registry
 * backend share: the backend's state (etcd_t), the caller operations and
 * watches it tracks, and the helpers that speak etcd's JSON gateway.
 * registry_etcd.c holds open/close, registration and leases (and defines
 * the helpers); registry_etcd_watch.c holds list and watch. */
#ifndef MOONRPC_REGISTRY_ETCD_H
#define MOONRPC_REGISTRY_ETCD_H

#include <cjson/cJSON.h>
#include "base/base.h"
#include "registry/registry.h"
#include "registry/etcd/http.h"

#define REQ_TIMEOUT_MS 5000L   /* one ordinary call */
#define BACKOFF_MIN_MS 200u
#define BACKOFF_MAX_MS 5000u

typedef struct etcd_s etcd_t;
typedef struct inst_s inst_t; /* a registered instance: registry_etcd.c */

enum { OP_UPDATE, OP_UNREG, OP_LIST, OP_BYE };

/* One caller's operation (or a goodbye of close()). */
typedef struct op_s {
  struct op_s *prev, *next;
  etcd_t *e;
  int kind;
  mrpc__http_req_t *req;
  char *key;          /* owned: unreg's key; list's prefix */
  char lease[32];     /* unreg: revoked after the delete */
  int status;
  int ready;          /* finished without HTTP: reported by the defer timer */
  mrpc_reg_cb cb;
  mrpc_reg_list_cb lcb;
  void *udata;
} op_t;

typedef struct watch_s {
  mrpc_watch_t head;  /* first */
  struct watch_s *prev, *next;
  etcd_t *e;
  char *prefix;       /* owned */
  mrpc_reg_list_cb cb;
  void *udata;
  uv_timer_t timer;   /* reconnect with backoff, or re-read now */
  mrpc__http_req_t *stream, *range;
  mrpc_buf_t line;    /* a partial line of the stream */
  int created, dirty;
  unsigned backoff;
} watch_t;

struct etcd_s {
  mrpc_registry_t *r;
  mrpc__http_t *http;
  uv_timer_t defer;   /* reports ready ops outside the call that made them */
  inst_t *insts;
  op_t *ops;
  watch_t *watches;
  int live;           /* open handles (timers, http) */
  int closing, byes;
  mrpc_reg_cb close_cb;
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

/* ---- the JSON gateway (registry_etcd.c) ---------------------------------- */

/* Adds `name: base64(s[0..n))` to o. 0 or MRPC_ENOMEM. */
int mrpc__etcd_add_b64(cJSON *o, const char *name, const char *s, size_t n);


/* The JSON object of a successful answer (free it with cJSON_Delete), or
 * NULL with *err set: the transport's status, MRPC_EREMOTE for an HTTP
 * code other than 200, MRPC_EPROTO for a body that is not a JSON object. */
cJSON *mrpc__etcd_answer(int status, long code, const char *body, size_t len, int *err);

/* o's string member `name`, or NULL when absent or not a string. */
const char *mrpc__etcd_jstr(const cJSON *o, const char *name);

/* POSTs the JSON object o to path; o is consumed whatever happens. The
 * rest as mrpc__http_post. */
int mrpc__etcd_post(etcd_t *e, const char *path, cJSON *o, long timeout,
                    mrpc__http_data_cb on_data, mrpc__http_cb cb, void *udata,
                    mrpc__http_req_t **out);

/* ---- bookkeeping (registry_etcd.c) --------------------------------------- */

/* A new op linked into e->ops (key copied when not NULL); NULL when out of
 * memory. */
op_t *mrpc__etcd_op_new(etcd_t *e, int kind, const char *key, mrpc_reg_cb cb, void *udata);

/* Frees an op already unlinked. */
void mrpc__etcd_op_free(op_t *o);

/* One open handle (a timer, the HTTP client) of e has closed. The last one
 * ends the ops still pending with MRPC_ECLOSED, frees e and reports the
 * close. */
void mrpc__etcd_live_down(etcd_t *e);

/* ---- list and watch (registry_etcd_watch.c) ------------------------------ */

int mrpc__etcd_list(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                    void *udata);
int mrpc__etcd_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                     void *udata, mrpc_watch_t **out);
void mrpc__etcd_unwatch(mrpc_watch_t *hw);

#endif
