/* registry/etcd/http.c: JSON-over-HTTP POSTs for the etcd registry backend,
 * through libcurl's multi-socket interface driven by the host's libuv loop.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one
 * uv_poll_t per socket) and when to wake it up (CURLMOPT_TIMERFUNCTION: one
 * uv_timer_t); we hand readiness back through curl_multi_socket_action and
 * then collect finished transfers. No threads, no blocking call.
 *
 * Completion callbacks run from dispatch(), outside every libcurl callback,
 * so they may start or cancel requests, or close the whole object. A
 * request's streaming data callback (the etcd watch) runs inside libcurl's
 * write callback and must not touch the multi handle.
 *
 * The contracts are in http.h; the etcd backend (etcd_op.c, and the
 * cancels of etcd_register.c and etcd_watch.c) is the only user. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <curl/curl.h>
#include "base/base.h"
#include "registry/etcd/http.h"

/* The largest response body kept in memory; beyond it the request fails
 * with MRPC_ETOOBIG. A streamed response bounds its own lines. */
#define MRPC_HTTP_MAX_BODY (4u * 1024 * 1024)

/* One socket libcurl asked us to watch; freed in sock_closed, after its
 * poll handle has closed. */
typedef struct sock_s {
  uv_poll_t poll;
  struct mrpc__http_s *h;     /* borrowed: the client that lists it */
  curl_socket_t fd;
  struct sock_s *prev, *next;
} sock_t;

/* The client; freed by handle_closed once its last uv handle has closed,
 * after mrpc__http_close. */
struct mrpc__http_s {
  uv_loop_t *loop;            /* the host's, borrowed */
  CURLM *multi;               /* owned; curl_multi_cleanup in finish_close */
  struct curl_slist *headers; /* owned; freed after curl_multi_cleanup */
  char base[300];             /* "http://host:port" */
  uv_timer_t timer;           /* libcurl's wake-up */
  sock_t *socks;              /* owned: polls not yet closing */
  mrpc__http_req_t *reqs;     /* owned: requests in flight, freed when they end or are canceled */
  int handles;                /* open uv handles: timer + polls */
  int dispatching;
  int closing;                /* close requested */
  int shut;                   /* curl_multi_cleanup done */
  void (*close_cb)(void *udata); /* the owner's, called once h is freed */
  void *close_udata;
};

/* A request in flight; freed after its callback (dispatch) or by
 * mrpc__http_cancel. */
struct mrpc__http_req_s {
  mrpc__http_t *h;            /* borrowed: the client that lists it */
  CURL *easy;                 /* owned; curl_easy_cleanup when it ends */
  mrpc_buf_t body;            /* owned: the collected body, freed with the request */
  mrpc__http_data_cb on_data; /* streaming: bytes go here, not to body */
  mrpc__http_cb cb;
  void *udata;                /* the caller's, never freed here */
  int err;                    /* set by the write callback when it aborts */
  mrpc__http_req_t *prev, *next;
};

/* ---- handles ------------------------------------------------------------- */

static void handle_closed(mrpc__http_t *h) {
  if (--h->handles > 0) return;
  void (*cb)(void *) = h->close_cb;
  void *ud = h->close_udata;
  curl_slist_free_all(h->headers);
  free(h);
  if (cb) cb(ud);
}

static void sock_closed(uv_handle_t *p) {
  sock_t *k = p->data;
  mrpc__http_t *h = k->h;
  free(k);
  handle_closed(h);
}

static void timer_closed(uv_handle_t *t) { handle_closed(t->data); }

static void sock_close(sock_t *k) {
  mrpc__http_t *h = k->h;
  if (k->prev) k->prev->next = k->next;
  else h->socks = k->next;
  if (k->next) k->next->prev = k->prev;
  uv_close((uv_handle_t *)&k->poll, sock_closed);
}

/* ---- libcurl's side ------------------------------------------------------ */

static int map_curl(CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_CONNECT: return UV_ECONNREFUSED;
  case CURLE_OPERATION_TIMEDOUT: return MRPC_ETIMEDOUT;
  case CURLE_COULDNT_RESOLVE_HOST: return MRPC_EADDR;
  case CURLE_OUT_OF_MEMORY: return MRPC_ENOMEM;
  default: return MRPC_ECONNLOST;
  }
}

/* Collects finished transfers and reports them, one at a time. */
static void finish_close(mrpc__http_t *h);

static void dispatch(mrpc__http_t *h) {
  CURLMsg *m;
  int left;
  h->dispatching++;
  while (!h->closing && (m = curl_multi_info_read(h->multi, &left)) != NULL) {
    mrpc__http_req_t *q = NULL;
    long code = 0;
    int status;
    if (m->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
    curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
    status = m->data.result == CURLE_OK ? 0 : q->err ? q->err : map_curl(m->data.result);
    /* m is invalid after remove_handle. */
    curl_multi_remove_handle(h->multi, q->easy);
    curl_easy_cleanup(q->easy);
    if (q->prev) q->prev->next = q->next;
    else h->reqs = q->next;
    if (q->next) q->next->prev = q->prev;
    q->cb(status, code, q->body.data ? q->body.data : "", q->body.len, q->udata);
    mrpc_buf_free(&q->body);
    free(q);
  }
  h->dispatching--;
  if (h->closing && !h->dispatching && !h->shut) finish_close(h);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  sock_t *k = p->data;
  mrpc__http_t *h = k->h;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR | CURL_CSELECT_IN | CURL_CSELECT_OUT;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(h->multi, k->fd, flags, &running);
  dispatch(h);
}

static void on_timeout(uv_timer_t *t) {
  mrpc__http_t *h = t->data;
  int running;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  dispatch(h);
}

static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  mrpc__http_t *h = userp;
  sock_t *k = socketp;
  int ev;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (k) {
      curl_multi_assign(h->multi, s, NULL);
      sock_close(k);
    }
    return 0;
  }
  if (!k) {
    if (!(k = calloc(1, sizeof *k))) return -1;
    if (uv_poll_init_socket(h->loop, &k->poll, s) != 0) {
      free(k);
      return -1;
    }
    k->poll.data = k;
    k->h = h;
    k->fd = s;
    k->next = h->socks;
    if (h->socks) h->socks->prev = k;
    h->socks = k;
    h->handles++;
    curl_multi_assign(h->multi, s, k);
  }
  ev = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
  uv_poll_start(&k->poll, ev, on_poll);
  return 0;
}

/* libcurl asks to be woken in `ms` (0: at once, but not from inside this
 * callback; -1: never). */
static int on_curl_timer(CURLM *m, long ms, void *userp) {
  mrpc__http_t *h = userp;
  (void)m;
  if (ms < 0) uv_timer_stop(&h->timer);
  else uv_timer_start(&h->timer, on_timeout, (uint64_t)ms, 0);
  return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud) {
  mrpc__http_req_t *q = ud;
  size_t len = size * n;
  int rc;
  if (q->on_data) {
    if ((rc = q->on_data(p, len, q->udata)) < 0) {
      q->err = rc;
      return 0; /* aborts the transfer */
    }
    return len;
  }
  if (q->body.len + len > MRPC_HTTP_MAX_BODY) {
    q->err = MRPC_ETOOBIG;
    return 0;
  }
  if (mrpc_buf_append(&q->body, p, len) < 0) {
    q->err = MRPC_ENOMEM;
    return 0;
  }
  return len;
}

/* ---- the interface ------------------------------------------------------- */

int mrpc__http_new(uv_loop_t *loop, const char *host, int port, mrpc__http_t **out) {
  mrpc__http_t *h = calloc(1, sizeof *h);
  struct curl_slist *l;
  int n;
  if (!h) return MRPC_ENOMEM;
  n = snprintf(h->base, sizeof h->base, strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d",
               host, port);
  if (n < 0 || (size_t)n >= sizeof h->base) {
    free(h);
    return MRPC_EADDR;
  }
  if (!(l = curl_slist_append(NULL, "Content-Type: application/json")) ||
      !(h->headers = l, l = curl_slist_append(h->headers, "Expect:")) ||
      !(h->headers = l, h->multi = curl_multi_init())) {
    curl_slist_free_all(h->headers);
    free(h);
    return MRPC_ENOMEM;
  }
  h->loop = loop;
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  h->handles = 1;
  *out = h;
  return 0;
}

/* Starts POST base+path with a JSON body. timeout_ms 0: no overall limit
 * (a stream). cb is called exactly once, from dispatch(), unless the
 * request is canceled first. */
int mrpc__http_post(mrpc__http_t *h, const char *path, const char *json, long timeout_ms,
                    mrpc__http_data_cb on_data, mrpc__http_cb cb, void *udata,
                    mrpc__http_req_t **out) {
  char url[400];
  mrpc__http_req_t *q;
  CURL *e;
  if (h->closing) return MRPC_ECLOSED;
  if ((size_t)snprintf(url, sizeof url, "%s%s", h->base, path) >= sizeof url) return MRPC_EINVAL;
  if (!(q = calloc(1, sizeof *q))) return MRPC_ENOMEM;
  if (!(e = curl_easy_init())) {
    free(q);
    return MRPC_ENOMEM;
  }
  q->h = h;
  q->easy = e;
  q->on_data = on_data;
  q->cb = cb;
  q->udata = udata;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)q);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  /* A registry on loopback or a private network: no proxy from the
   * environment (http_proxy) in between. */
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
  curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, json);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
  if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    free(q);
    return MRPC_ENOMEM;
  }
  q->next = h->reqs;
  if (h->reqs) h->reqs->prev = q;
  h->reqs = q;
  if (out) *out = q;
  return 0;
}

/* Stops a request in flight; its callback is not called. Not from inside
 * a data callback. */
void mrpc__http_cancel(mrpc__http_req_t *q) {
  mrpc__http_t *h = q->h;
  curl_multi_remove_handle(h->multi, q->easy);
  curl_easy_cleanup(q->easy);
  if (q->prev) q->prev->next = q->next;
  else h->reqs = q->next;
  if (q->next) q->next->prev = q->prev;
  mrpc_buf_free(&q->body);
  free(q);
}

static void finish_close(mrpc__http_t *h) {
  h->shut = 1;
  while (h->reqs) mrpc__http_cancel(h->reqs);
  /* libcurl may still call on_socket (REMOVE) and on_curl_timer here. */
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  while (h->socks) sock_close(h->socks);
  uv_close((uv_handle_t *)&h->timer, timer_closed);
}

/* Cancels what is in flight (no callbacks), closes every handle, frees h,
 * then calls cb. Safe from inside a completion callback. */
void mrpc__http_close(mrpc__http_t *h, void (*cb)(void *udata), void *udata) {
  h->closing = 1;
  h->close_cb = cb;
  h->close_udata = udata;
  if (!h->dispatching) finish_close(h);
}
