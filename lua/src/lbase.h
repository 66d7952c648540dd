/* lbase.h: the helpers every part of the moonrpc Lua binding shares, the
 * one header the classes (lserver.c, lclient.c, lregistry.c, lselector.c,
 * lsignal.c, ledit.c) and the loop (lloop.c) include to reach the rest of
 * the binding. lbase.c defines all of it.
 *
 * The per-state context: one per Lua state, kept as a userdata in the
 * registry. It holds the loop (handed in by the host with lmrpc_set_loop,
 * or created on first use), the state that currently runs the loop, and
 * references to the Lua dispatchers that C callbacks call: the request
 * dispatcher, the call completion dispatcher, the timer dispatcher, the
 * push dispatcher and the event dispatcher. Yields happen in Lua only: C
 * callbacks call those dispatchers with lua_pcall (lmrpc_begin and
 * lmrpc_callback), and they resume coroutines from Lua.
 *
 * Around it, the conversions the classes have in common: serialize types,
 * metadata tables, named limits, the nil/code/message failure triple, and
 * the creation of a class's metatable.
 *
 * lbase.c may call Lua's C API, libuv and the core's public API; it calls
 * no other file of the binding, and the entry (lmoonrpc.c) is called by
 * nobody. */
#ifndef MOONRPC_LBASE_H
#define MOONRPC_LBASE_H

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>
#include "moonrpc.h"

#define LMRPC_CTX_KEY "moonrpc.ctx"

typedef struct lmrpc_ctx_s {
  uv_loop_t *loop;       /* the loop every object of this state uses: the
                          * host's, or &own; NULL until first needed and
                          * once ctx_gc has run */
  uv_loop_t own;         /* storage when we created the loop ourselves;
                          * closed by the context's __gc (ctx_gc) */
  int owns_loop;
  lua_State *L;          /* the state running the loop: callbacks use it */
  lua_State *main;
  int depth;             /* >0 inside a callback from the loop */
  int closing;           /* lua_close is finalizing: call no Lua */
  int log_level;         /* moonrpc.log.level as a number (lserver.c's
                          * LOG_*): the C sink drops messages below it */
  /* The dispatchers, registry refs set by set_dispatchers (lloop.c), which
   * releases a ref when it replaces it; the last ones go with the registry
   * at lua_close. */
  int ref_request;       /* Lua: dispatch(handler, req, args) */
  int ref_complete;      /* Lua: complete(id, code, msg, value, meta) */
  int ref_timer;         /* Lua: fire(id) */
  int ref_push;          /* Lua: push(client_id, service, method, value, meta) */
  int ref_event;         /* Lua: event(id, ...) for repeating callbacks (watches) */
  mrpc_buf_t enc;        /* reused encode buffer; freed by ctx_gc */
  struct ltimer_s *timers; /* lloop.c's pending one-shot timers, linked
                          * through their own next/prev, so that they can be
                          * closed before a host's loop is torn down */
  struct lmrpc_pcall_s *free_calls; /* lclient.c's pool of pending-call
                          * records, linked through their first member;
                          * each freed by ctx_gc */
} lmrpc_ctx_t;

/* Tells the binding to use `loop` (owned by the host, who closes it) for
 * state L. Must be called before the binding creates its first object or
 * runs its loop (require "moonrpc" alone creates none). 0, or MRPC_EBUSY
 * when the state already has a loop. */
int lmrpc_set_loop(lua_State *L, uv_loop_t *loop);

/* Returns the context of L, creating it (and a loop) on first use. */
lmrpc_ctx_t *lmrpc_ctx(lua_State *L);

/* The same without creating a loop: ctx->loop may be NULL. For what does
 * not touch the loop (dispatchers, the log level, in_callback). */
lmrpc_ctx_t *lmrpc_ctx_noloop(lua_State *L);

/* Calls the function on the top of ctx->L's stack with `nargs` arguments
 * below it, as a callback from the loop: protected, errors logged. */
void lmrpc_callback(lmrpc_ctx_t *ctx, lua_State *L, int nargs);

/* Pushes the dispatcher with registry ref `ref` onto ctx->L and returns
 * that state, ready for arguments. */
lua_State *lmrpc_begin(lmrpc_ctx_t *ctx, int ref);

/* Serialize type from a Lua argument: nil (msgpack), a number, or one of
 * "msgpack", "json", "raw". Raises on anything else. */
int lmrpc_check_serialize(lua_State *L, int idx);

/* Pushes the frame's metadata as a table (or nil when it has none), leaving
 * out the key `skip` (may be NULL). */
void lmrpc_push_meta(lua_State *L, const mrpc_frame_t *f, const char *skip);

/* Collects string pairs of the table at idx into a malloc'ed array (the
 * caller frees it); the strings stay owned by Lua (keep the table on the
 * stack while in use). Returns the count, or -1 when a key or value is not
 * a string/number. */
int lmrpc_meta_from_table(lua_State *L, int idx, mrpc_meta_t **out);

/* Reads the named limits (max_frame, max_meta_pairs, ...) from the options
 * table at index t; absent ones, or no table at all, stay 0, the core's
 * "use the default". A limit out of 1..2^31-1 raises. */
void lmrpc_read_limits(lua_State *L, int t, mrpc_limits_t *l);

/* Pushes the failure triple nil, code name, message for `err` (a
 * negative MRPC_E* or libuv code); returns 3 for a lua_CFunction. */
int lmrpc_push_fail(lua_State *L, int err);

/* Creates metatable `name` with `methods` behind __index and the given
 * __gc, __close and __tostring (each may be NULL). Leaves nothing on the
 * stack. */
void lmrpc_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction gc, lua_CFunction close, lua_CFunction tostring);

#endif
