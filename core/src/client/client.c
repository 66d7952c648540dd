/* client.c: one client connection to an rpcx server: seq -> pending call,
 * timeouts, heartbeats, server push, reconnect on the next call.
 *
 * A client has at most one live link (a connection attempt and, once up,
 * the connection). Pending calls belong to the client: when its link dies
 * every pending call ends with the link's error, the link is detached and
 * freed once its handles close, and the next call opens a new link. */
#include <stdlib.h>
#include <string.h>
#include "client/client.h"

static void link_fail(link_t *l, int err);
static int call_heartbeat(mrpc_client_t *c, int kind, uint64_t timeout,
                          mrpc_call_cb cb, void *udata);

/* ---- the seq table ---------------------------------------------------------- */

static size_t slot(const mrpc_client_t *c, uint64_t seq) {
  return (size_t)((seq * 0x9E3779B97F4A7C15ull) >> 20) & (c->cap - 1);
}

static int tab_put(mrpc_client_t *c, call_t *k) {
  size_t i;
  if ((c->count + 1) * 2 > c->cap) {
    size_t j, oldcap = c->cap, ncap = oldcap ? oldcap * 2 : 64;
    call_t **old = c->tab, **t = calloc(ncap, sizeof *t);
    if (!t) return MRPC_ENOMEM;
    c->tab = t;
    c->cap = ncap;
    for (j = 0; j < oldcap; j++) {
      if (!old[j]) continue;
      for (i = slot(c, old[j]->seq); t[i]; i = (i + 1) & (ncap - 1)) {}
      t[i] = old[j];
    }
    free(old);
  }
  for (i = slot(c, k->seq); c->tab[i]; i = (i + 1) & (c->cap - 1)) {}
  c->tab[i] = k;
  c->count++;
  return 0;
}

/* Removes and returns the call for `seq`, shifting back the probe run. */
static call_t *tab_take(mrpc_client_t *c, uint64_t seq) {
  size_t i, j, mask = c->cap - 1;
  call_t *k;
  if (!c->cap) return NULL;
  for (i = slot(c, seq); c->tab[i]; i = (i + 1) & mask)
    if (c->tab[i]->seq == seq) break;
  if (!(k = c->tab[i])) return NULL;
  c->tab[i] = NULL;
  c->count--;
  for (j = (i + 1) & mask; c->tab[j]; j = (j + 1) & mask) {
    size_t h = slot(c, c->tab[j]->seq);
    /* Move tab[j] into the hole when its home is not in (i, j]. */
    if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
      c->tab[i] = c->tab[j];
      c->tab[j] = NULL;
      i = j;
    }
  }
  return k;
}

/* ---- deadlines ---------------------------------------------------------------- */

static void tlist_insert(mrpc_client_t *c, call_t *k) {
  call_t *p = c->ttail;
  /* Most calls share one timeout, so the new one usually goes last. */
  while (p && p->deadline > k->deadline) p = p->tprev;
  k->tprev = p;
  k->tnext = p ? p->tnext : c->thead;
  if (k->tnext) k->tnext->tprev = k;
  else c->ttail = k;
  if (p) p->tnext = k;
  else c->thead = k;
}

static void tlist_remove(mrpc_client_t *c, call_t *k) {
  if (!k->deadline) return;
  if (k->tprev) k->tprev->tnext = k->tnext;
  else c->thead = k->tnext;
  if (k->tnext) k->tnext->tprev = k->tprev;
  else c->ttail = k->tprev;
  k->tprev = k->tnext = NULL;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(mrpc_client_t *c) {
  uint64_t now = uv_now(c->loop);
  if (!c->thead) {
    uv_timer_stop(&c->timer);
    return;
  }
  uv_timer_start(&c->timer, on_timer,
                 c->thead->deadline > now ? c->thead->deadline - now : 0, 0);
}

static call_t *call_alloc(mrpc_client_t *c) {
  call_t *k = c->spare;
  if (k) c->spare = k->tnext;
  else k = malloc(sizeof *k);
  if (k) memset(k, 0, sizeof *k);
  return k;
}

static void call_free(mrpc_client_t *c, call_t *k) {
  k->tnext = c->spare;
  c->spare = k;
}

/* An idle client does not keep its host's loop running, as libuv hosts
 * expect (a script's run() returns once nothing waits): the client's timer
 * and its link's handle and timer are referenced only while a call or a
 * ping of the host's is pending. Our own heartbeats do not count. Requests
 * in flight (resolve, connect, writes) hold the loop up on their own. */
static void update_ref(mrpc_client_t *c) {
  void (*set)(uv_handle_t *) = c->busy > 0 ? uv_ref : uv_unref;
  if (c->closing) return;
  set((uv_handle_t *)&c->timer);
  if (c->link) {
    set(&c->link->st.u.handle);
    set((uv_handle_t *)&c->link->timer);
  }
}

/* A call leaves the host's count (it left the table). */
static void call_gone(mrpc_client_t *c, call_t *k) {
  if (k->kind != HEARTBEAT && --c->busy == 0) update_ref(c);
}

/* Ends one call: it must already be out of the table. */
static void finish(mrpc_client_t *c, call_t *k, int status,
                   const mrpc_frame_t *reply) {
  mrpc_call_cb cb = k->cb;
  void *ud = k->udata;
  int kind = k->kind;
  uint64_t sent = k->sent_ns;
  tlist_remove(c, k);
  call_gone(c, k);
  call_free(c, k);
  if (kind != CALL && status == 0) c->rtt_us = (uv_hrtime() - sent) / 1000;
  if (kind == HEARTBEAT) {
    if (status == MRPC_ETIMEDOUT && c->link) link_fail(c->link, MRPC_EHEARTBEAT);
    return;
  }
  if (cb) cb(status, reply, ud);
}

static void on_timer(uv_timer_t *t) {
  mrpc_client_t *c = t->data;
  uint64_t now = uv_now(c->loop);
  while (c->thead && c->thead->deadline <= now) {
    call_t *k = c->thead;
    tab_take(c, k->seq);
    finish(c, k, MRPC_ETIMEDOUT, NULL);
  }
  if (!c->closing) arm_timer(c);
}

/* Ends every pending call with `err`. Calls started by the callbacks are
 * not touched: the table is emptied before the first callback runs. */
static void fail_all(mrpc_client_t *c, int err) {
  call_t **tab = c->tab, *list = NULL, *k;
  size_t i, cap = c->cap;
  c->tab = NULL;
  c->cap = c->count = 0;
  for (i = 0; i < cap; i++) {
    if (!(k = tab[i])) continue;
    tlist_remove(c, k);
    k->tprev = list; /* reuse tprev as the chain */
    list = k;
  }
  free(tab);
  while ((k = list)) {
    list = k->tprev;
    k->deadline = 0; /* already out of the deadline list */
    finish(c, k, err, NULL);
  }
  if (!c->closing) arm_timer(c);
}

/* ---- links -------------------------------------------------------------------- */

static void client_unref(mrpc_client_t *c);

static void link_unref(link_t *l) {
  mrpc_client_t *c;
  if (--l->refs > 0) return;
  c = l->cli;
  free(l);
  client_unref(c);
}

static void link_handle_closed(uv_handle_t *h) { link_unref(h->data); }
static void link_stream_closed(mrpc__stream_t *st) { link_unref(st->owner); }

/* Detaches the link from its client, fails the pending calls, closes. */
static void link_fail(link_t *l, int err) {
  mrpc_client_t *c = l->cli;
  l->err = err;
  if (c && c->link == l) {
    c->link = NULL;
    fail_all(c, err);
  }
  uv_timer_stop(&l->timer);
  mrpc__stream_close(&l->st);
  if (!uv_is_closing((uv_handle_t *)&l->timer))
    uv_close((uv_handle_t *)&l->timer, link_handle_closed);
}

static int link_on_frame(mrpc__stream_t *st, mrpc_frame_t *f) {
  link_t *l = st->owner;
  mrpc_client_t *c = l->cli;
  call_t *k;
  if (!c || c->link != l) return 1;
  if (!mrpc_frame_is_response(f)) {
    if (mrpc_frame_is_oneway(f) && !mrpc_frame_is_heartbeat(f) && c->opts.on_push)
      c->opts.on_push(c, f, c->opts.push_udata);
    return c->link != l;
  }
  if ((k = tab_take(c, f->seq)) == NULL) return 0; /* ended already */
  finish(c, k, 0, f);
  return c->link != l || c->closing;
}

static void on_deferred_fail(uv_timer_t *t) {
  link_t *l = t->data;
  link_fail(l, l->err);
}

/* A write that fails inside mrpc_client_call must not end calls (that one
 * included) from inside the call: the failure is taken up on the next loop
 * turn instead. */
static void link_on_error(mrpc__stream_t *st, int err) {
  link_t *l = st->owner;
  /* A peer that went away shows as EOF, a reset, or EPIPE when we write to
   * a connection it already reset: all of them are a lost connection. */
  l->err = (err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE)
               ? MRPC_ECONNLOST : err;
  if (l->cli->sending) uv_timer_start(&l->timer, on_deferred_fail, 0, 0);
  else link_fail(l, l->err);
}

static void on_heartbeat_tick(uv_timer_t *t) {
  link_t *l = t->data;
  mrpc_client_t *c = l->cli;
  uint64_t to = c->opts.heartbeat_timeout_ms;
  if (c->link != l) return;
  call_heartbeat(c, HEARTBEAT, to ? to : c->opts.heartbeat_interval_ms, NULL, NULL);
}

static void on_connect(uv_connect_t *req, int status) {
  link_t *l = req->data;
  if (l->cli->link == l) {
    uv_timer_stop(&l->timer);
    if (status == 0) status = mrpc__stream_start(&l->st);
    if (status < 0) {
      link_fail(l, status);
    } else {
      l->up = 1;
      if (!l->st.is_pipe) uv_tcp_nodelay(&l->st.u.tcp, 1);
      if (l->cli->opts.heartbeat_interval_ms)
        uv_timer_start(&l->timer, on_heartbeat_tick,
                       l->cli->opts.heartbeat_interval_ms,
                       l->cli->opts.heartbeat_interval_ms);
    }
  }
  link_unref(l); /* the connect request's reference */
}

static void start_connect(link_t *l, const struct sockaddr *sa) {
  int r;
  l->creq.data = l;
  if (l->st.is_pipe)
    uv_pipe_connect(&l->creq, &l->st.u.pipe, l->cli->target, on_connect), r = 0;
  else
    r = uv_tcp_connect(&l->creq, &l->st.u.tcp, sa, on_connect);
  if (r < 0) {
    link_fail(l, r);
    return;
  }
  l->refs++;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *ai) {
  link_t *l = req->data;
  if (l->cli->link == l) {
    if (status < 0 || !ai) link_fail(l, status < 0 ? status : MRPC_EADDR);
    else start_connect(l, ai->ai_addr);
  }
  if (ai) uv_freeaddrinfo(ai);
  link_unref(l); /* the resolver's reference */
}

static void on_connect_timeout(uv_timer_t *t) {
  link_t *l = t->data;
  if (l->cli && l->cli->link == l) link_fail(l, MRPC_ETIMEDOUT);
}

static int link_open(mrpc_client_t *c) {
  link_t *l = calloc(1, sizeof *l);
  int r, pipe = strcmp(c->network, "unix") == 0;
  if (!l) return MRPC_ENOMEM;
  r = mrpc__stream_init(&l->st, c->loop, pipe, &c->opts.limits);
  if (r < 0) {
    free(l);
    return r;
  }
  l->st.owner = l;
  l->st.on_frame = link_on_frame;
  l->st.on_error = link_on_error;
  l->st.on_closed = link_stream_closed;
  l->cli = c;
  l->refs = 2; /* the stream and the timer */
  uv_timer_init(c->loop, &l->timer);
  l->timer.data = l;
  c->link = l;
  c->live++;
  update_ref(c);
  uv_timer_start(&l->timer, on_connect_timeout, c->opts.connect_timeout_ms, 0);
  if (pipe) {
    start_connect(l, NULL);
  } else {
    struct sockaddr_storage ss;
    char host[256], port_s[16];
    int port;
    r = mrpc__sockaddr(c->target, &ss, host, sizeof host, &port);
    if (r == 0) {
      start_connect(l, (struct sockaddr *)&ss);
    } else if (r == 1) {
      struct addrinfo hints;
      memset(&hints, 0, sizeof hints);
      hints.ai_socktype = SOCK_STREAM;
      snprintf(port_s, sizeof port_s, "%d", port);
      l->gai.data = l;
      r = uv_getaddrinfo(c->loop, &l->gai, on_resolved, host, port_s, &hints);
      if (r < 0) link_fail(l, r);
      else l->refs++;
    } else {
      link_fail(l, r);
    }
  }
  return c->link == l ? 0 : l->err; /* l is freed only from the loop */
}

/* ---- the client ------------------------------------------------------------------ */

int mrpc_client_new(uv_loop_t *loop, const char *address,
                    const mrpc_client_opts_t *opts, mrpc_client_t **out) {
  mrpc_client_t *c = calloc(1, sizeof *c);
  int r;
  if (!c) return MRPC_ENOMEM;
  r = mrpc_addr_split(address, &c->network, c->target, sizeof c->target);
  if (r < 0 || !(c->address = mrpc__strndup(address, strlen(address)))) {
    free(c);
    return r < 0 ? r : MRPC_ENOMEM;
  }
  c->loop = loop;
  if (opts) c->opts = *opts;
  mrpc_limits_default(&c->opts.limits);
  if (!c->opts.connect_timeout_ms) c->opts.connect_timeout_ms = 5000;
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->live = 1;
  update_ref(c);
  *out = c;
  return 0;
}

/* The entry points below may be called from outside the loop, after the
 * host blocked for a while (a script's top level, a REPL, a blocking
 * command): libuv's cached "now" is then as old as the last loop turn, and
 * a deadline or timer counted from it would expire early, at once if the
 * host blocked longer than the timeout. So they refresh it first. */
static void fresh_now(mrpc_client_t *c) { uv_update_time(c->loop); }

int mrpc_client_connect(mrpc_client_t *c) {
  if (c->closing) return MRPC_ECLOSED;
  fresh_now(c);
  return c->link ? 0 : link_open(c);
}

/* Encodes one frame on the current link, opening it when needed. */
static int send_frame(mrpc_client_t *c, mrpc_frame_t *f, int gzip) {
  int r;
  if (!c->link && (r = link_open(c)) < 0) return r;
  if (!c->link) return MRPC_ECONNLOST; /* failed at once */
  r = mrpc_frame_encode_auto(mrpc__stream_out(&c->link->st), f, gzip, &c->scratch);
  if (r < 0) return r;
  c->sending++;
  if (!c->corked) mrpc__stream_flush(&c->link->st);
  c->sending--;
  return 0;
}

static int track(mrpc_client_t *c, uint64_t seq, uint64_t timeout, int kind,
                 mrpc_call_cb cb, void *udata, call_t **out) {
  call_t *k = call_alloc(c);
  if (!k) return MRPC_ENOMEM;
  k->seq = seq;
  k->cb = cb;
  k->udata = udata;
  k->kind = kind;
  if (tab_put(c, k) < 0) {
    call_free(c, k);
    return MRPC_ENOMEM;
  }
  if (kind != HEARTBEAT && c->busy++ == 0) update_ref(c);
  if (timeout) {
    k->deadline = uv_now(c->loop) + timeout;
    tlist_insert(c, k);
    if (c->thead == k) arm_timer(c);
  }
  *out = k;
  return 0;
}

static void untrack(mrpc_client_t *c, call_t *k) {
  tab_take(c, k->seq);
  tlist_remove(c, k);
  call_gone(c, k);
  call_free(c, k);
}

int mrpc_client_call(mrpc_client_t *c, const mrpc_call_args_t *a,
                     mrpc_call_cb cb, void *udata, uint64_t *id) {
  mrpc_meta_t small[SMALL_META], *meta = small;
  char tbuf[24];
  mrpc_frame_t f;
  call_t *k = NULL;
  size_t n = a->meta_count;
  int r;
  if (c->closing) return MRPC_ECLOSED;
  fresh_now(c);
  /* Open the link before tracking, so a failure to connect at once is
   * reported by the return value and never by the callback. */
  if (!c->link && (r = link_open(c)) < 0) return r;
  /* Backpressure (client.h): refuse rather than queue without bound. */
  if (mrpc__stream_queued(&c->link->st) >= c->opts.limits.max_write_queue)
    return MRPC_ESLOWPEER;
  memset(&f, 0, sizeof f);
  f.flags = a->oneway ? MRPC_FLAG_ONEWAY : 0;
  f.serialize = (uint8_t)(a->serialize << 4);
  f.seq = c->next_seq++;
  f.path = a->service;
  f.path_len = strlen(a->service);
  f.method = a->method;
  f.method_len = strlen(a->method);
  f.payload = a->payload;
  f.payload_len = a->payload_len;
  if (a->timeout_ms) {
    if (n + 1 > SMALL_META && !(meta = malloc((n + 1) * sizeof *meta)))
      return MRPC_ENOMEM;
    if (n) memcpy(meta, a->meta, n * sizeof *meta);
    meta[n].key = MRPC_META_TIMEOUT;
    meta[n].key_len = sizeof MRPC_META_TIMEOUT - 1;
    meta[n].val = tbuf;
    meta[n].val_len = (size_t)snprintf(tbuf, sizeof tbuf, "%llu",
                                       (unsigned long long)a->timeout_ms);
    f.meta = meta;
    f.meta_count = n + 1;
  } else {
    f.meta = a->meta;
    f.meta_count = n;
  }
  if (!a->oneway) r = track(c, f.seq, a->timeout_ms, CALL, cb, udata, &k);
  else r = 0;
  if (r == 0) r = send_frame(c, &f, a->gzip);
  if (meta != small) free(meta);
  if (r < 0) {
    if (k) untrack(c, k);
    return r;
  }
  if (id) *id = f.seq;
  return 0;
}

static int call_heartbeat(mrpc_client_t *c, int kind, uint64_t timeout,
                          mrpc_call_cb cb, void *udata) {
  unsigned char pl[9];
  mrpc_frame_t f;
  call_t *k;
  uint64_t now = uv_hrtime();
  int i, r;
  if (!c->link && (r = link_open(c)) < 0) return r;
  memset(&f, 0, sizeof f);
  f.flags = MRPC_FLAG_HEARTBEAT;
  f.serialize = MRPC_SERIALIZE_MSGPACK << 4;
  f.seq = c->next_seq++;
  f.path = f.method = "";
  pl[0] = 0xd3; /* msgpack int64, as rpcx's client sends */
  for (i = 0; i < 8; i++) pl[1 + i] = (unsigned char)(now >> (56 - 8 * i));
  f.payload = (const char *)pl;
  f.payload_len = sizeof pl;
  if ((r = track(c, f.seq, timeout, kind, cb, udata, &k)) < 0) return r;
  k->sent_ns = now;
  if ((r = send_frame(c, &f, 0)) < 0) untrack(c, k);
  return r;
}

int mrpc_client_ping(mrpc_client_t *c, uint64_t timeout_ms, mrpc_call_cb cb,
                     void *udata) {
  if (c->closing) return MRPC_ECLOSED;
  fresh_now(c);
  return call_heartbeat(c, PING, timeout_ms, cb, udata);
}

int mrpc_client_cancel(mrpc_client_t *c, uint64_t id) {
  call_t *k = tab_take(c, id);
  if (!k) return MRPC_EINVAL;
  finish(c, k, MRPC_ECANCELED, NULL);
  if (!c->closing) arm_timer(c);
  return 0;
}

uint64_t mrpc_client_rtt(const mrpc_client_t *c) { return c->rtt_us; }
int mrpc_client_connected(const mrpc_client_t *c) { return c->link && c->link->up; }
size_t mrpc_client_pending(const mrpc_client_t *c) { return c->count; }
const char *mrpc_client_address(const mrpc_client_t *c) { return c->address; }

static void client_unref(mrpc_client_t *c) {
  mrpc_client_cb cb;
  void *ud;
  call_t *k;
  if (--c->live > 0) return;
  cb = c->close_cb;
  ud = c->close_udata;
  while ((k = c->spare)) {
    c->spare = k->tnext;
    free(k);
  }
  free(c->tab);
  free(c->address);
  mrpc_buf_free(&c->scratch);
  free(c);
  if (cb) cb(NULL, ud);
}

static void client_timer_closed(uv_handle_t *h) { client_unref(h->data); }

void mrpc_client_close(mrpc_client_t *c, mrpc_client_cb cb, void *udata) {
  if (c->closing) return;
  c->closing = 1;
  c->close_cb = cb;
  c->close_udata = udata;
  if (c->link) {
    link_t *l = c->link;
    c->link = NULL;
    link_fail(l, MRPC_ECLOSED);
  }
  fail_all(c, MRPC_ECLOSED);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, client_timer_closed);
}

const char *mrpc_frame_error(const mrpc_frame_t *f, size_t *len) {
  const mrpc_meta_t *m;
  if (mrpc_frame_status(f) != MRPC_STATUS_ERROR) return NULL;
  m = mrpc_frame_meta_get(f, MRPC_META_ERROR);
  if (!m) {
    if (len) *len = 7;
    return "unknown";
  }
  if (len) *len = m->val_len;
  return m->val;
}

void mrpc_client_cork(mrpc_client_t *c) { c->corked++; }

void mrpc_client_uncork(mrpc_client_t *c) {
  if (c->corked > 0 && --c->corked == 0 && c->link) {
    c->sending++;
    mrpc__stream_flush(&c->link->st);
    c->sending--;
  }
}
