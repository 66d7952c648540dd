/* redis_watch.c: the Redis registry's watches, on keyspace
 * notifications.
 *
 * Each watch has a connection of its own that enables keyspace
 * notifications (CONFIG SET) and PSUBSCRIBEs to
 * "__keyspace@0__:base/Service/" + "*"; every notification makes it list the
 * service again (through the command connection) and report the list when
 * it changed. A lost watch connection reports nothing, reconnects with
 * backoff, then reports the list again.
 *
 * It calls down into redis_ops.c (the lists), redis_conn.c (its
 * connection, the backoff) and redis_format.c; those report back through
 * the hooks it hands them: the list's lcb (on_listed) and the
 * connection's gone (on_conn_gone). */
#include <stdlib.h>
#include <string.h>
#include "registry/redis/redis.h"

static void watch_unref(watch_t *w) {
  redis_t *rr = w->rr;
  if (--w->refs > 0) return;
  free(w->service);
  free(w->pattern);
  free(w->last);
  free(w);
  rr->nwatch--;
  mrpc__redis_check_done(rr);
}

static void on_watch_timer_closed(uv_handle_t *h) {
  watch_t *w = h->data;
  w->rr->live--;
  watch_unref(w);
}

static void on_watch_timer(uv_timer_t *t);

static void watch_retry(watch_t *w) {
  w->backoff = mrpc__redis_backoff_next(w->backoff);
  uv_timer_start(&w->timer, on_watch_timer, w->backoff, 0);
}

static void on_listed(int status, const mrpc_reg_entry_t *l, size_t n, void *udata);

/* Lists the service again; a list already under way lists once more. */
static void watch_list(watch_t *w) {
  op_t *op;
  if (w->listing) {
    w->dirty = 1;
    return;
  }
  if (!(op = mrpc__redis_list_op(w->rr, w->service))) {
    watch_retry(w);
    return;
  }
  op->lcb = on_listed; /* the list holds a ref on w until it reports */
  op->udata = w;
  w->listing = 1;
  w->refs++;
  mrpc__redis_submit(w->rr, op);
}

/* Flattens a sorted list to compare it with the last one reported. */
static char *flatten(const mrpc_reg_entry_t *l, size_t n, size_t *len) {
  size_t i, total = 1;
  char *buf, *p;
  for (i = 0; i < n; i++) total += strlen(l[i].addr) + strlen(l[i].meta) + 2;
  if (!(p = buf = malloc(total))) return NULL;
  for (i = 0; i < n; i++) {
    size_t a = strlen(l[i].addr) + 1, m = strlen(l[i].meta) + 1;
    memcpy(p, l[i].addr, a);
    memcpy(p + a, l[i].meta, m);
    p += a + m;
  }
  *len = (size_t)(p - buf);
  return buf;
}

/* A list of the watch's completed. */
static void on_listed(int status, const mrpc_reg_entry_t *l, size_t n, void *udata) {
  watch_t *w = udata;
  w->listing = 0;
  if (w->dead || !w->subscribed) {
    /* unwatched, or the watch connection went away: nothing to report */
  } else if (status < 0) {
    w->dirty = 0;
    watch_retry(w);
  } else if (w->dirty) {
    w->dirty = 0;
    watch_list(w);
  } else {
    size_t len = 0;
    char *flat = flatten(l, n, &len);
    if (w->force || !w->reported || !flat || len != w->last_len ||
        memcmp(flat, w->last, len) != 0) {
      free(w->last);
      w->last = flat;
      w->last_len = flat ? len : 0;
      w->force = 0;
      w->reported = 1;
      w->backoff = 0;
      w->cb(0, l, n, w->udata);
    } else {
      free(flat);
    }
  }
  watch_unref(w);
}

static void on_watch_msg(redisAsyncContext *ac, void *reply, void *privdata) {
  watch_t *w = privdata;
  redisReply *rep = reply, *kind;
  (void)ac;
  if (!rep || w->dead || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
      (kind = rep->element[0])->type != REDIS_REPLY_STRING)
    return;
  if (strcmp(kind->str, "psubscribe") == 0) {
    w->subscribed = 1;
    w->force = 1; /* the first list after (re)subscribing is reported */
    watch_list(w);
  } else if (strcmp(kind->str, "pmessage") == 0) {
    watch_list(w);
  }
}

static void on_watch_connect(const redisAsyncContext *ac, int status) {
  conn_t *c = ac->data;
  watch_t *w = c->owner;
  const char *cfg[4] = {"CONFIG", "SET", "notify-keyspace-events", "KEA"};
  size_t cfgl[4] = {6, 3, 22, 3};
  const char *sub[2] = {"PSUBSCRIBE", w->pattern};
  size_t subl[2];
  if (status != REDIS_OK) return; /* the cleanup hook reports it */
  c->up = 1;
  c->up_at = uv_now(c->rr->r->loop);
  if (w->dead) return;
  subl[0] = 10;
  subl[1] = strlen(w->pattern);
  /* The setting is server-wide and lost with a restart: set it on every
   * connection. Its reply comes before any message (hiredis matches
   * pending replies first); an error (CONFIG renamed) is ignored. */
  redisAsyncCommandArgv(c->ac, NULL, NULL, 4, cfg, cfgl);
  redisAsyncCommandArgv(c->ac, on_watch_msg, w, 2, sub, subl);
}

static void on_conn_gone(conn_t *c);

static void on_watch_timer(uv_timer_t *t) {
  watch_t *w = t->data;
  if (w->dead) return;
  if (w->conn) {
    if (w->subscribed) watch_list(w); /* a failed list, again */
    return;
  }
  if ((w->conn = mrpc__redis_conn_open(w->rr, w, on_watch_connect, on_conn_gone))) w->refs++;
  else watch_retry(w);
}

/* The watch's connection ended (hiredis freed it). */
static void on_conn_gone(conn_t *c) {
  watch_t *w = c->owner;
  w->conn = NULL;
  w->subscribed = 0;
  w->dirty = 0;
  if (!w->dead) {
    if (mrpc__redis_conn_lived(c)) w->backoff = 0;
    watch_retry(w);
  }
  watch_unref(w);
}

int mrpc__redis_watch(mrpc_registry_t *r, const char *service, mrpc_reg_list_cb cb,
                       void *udata, mrpc_watch_t **out) {
  redis_t *rr = r->backend;
  char prefix[KEY_MAX];
  watch_t *w;
  if (rr->closing) return MRPC_ECLOSED;
  if (mrpc__reg_key(r, service, NULL, prefix, sizeof prefix) < 0) return MRPC_EINVAL;
  if (!(w = calloc(1, sizeof *w))) return MRPC_ENOMEM;
  if (!(w->service = strdup(service)) ||
      !(w->pattern = mrpc__redis_glob_escape("__keyspace@0__:", prefix, "*"))) {
    free(w->service);
    free(w);
    return MRPC_ENOMEM;
  }
  w->head.reg = r;
  w->rr = rr;
  w->cb = cb;
  w->udata = udata;
  uv_timer_init(r->loop, &w->timer);
  w->timer.data = w;
  w->refs = 1; /* the timer */
  rr->live++;
  rr->nwatch++;
  w->next = rr->watches;
  rr->watches = w;
  uv_timer_start(&w->timer, on_watch_timer, 0, 0);
  *out = &w->head;
  return 0;
}

void mrpc__redis_unwatch(mrpc_watch_t *mw) {
  watch_t *w = (watch_t *)mw, **p;
  if (w->dead) return;
  w->dead = 1;
  for (p = &w->rr->watches; *p; p = &(*p)->next)
    if (*p == w) {
      *p = w->next;
      break;
    }
  uv_timer_stop(&w->timer);
  uv_close((uv_handle_t *)&w->timer, on_watch_timer_closed);
  /* hiredis defers this when inside one of the context's callbacks. */
  if (w->conn && w->conn->ac) redisAsyncDisconnect(w->conn->ac);
}
