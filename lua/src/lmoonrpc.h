/* lmoonrpc.h: the moonrpc Lua binding's shared context.
 *
 * One context per Lua state, kept as a userdata in the registry. It holds
 * the loop (handed in by the host with lmrpc_set_loop, or created on first
 * use), the state that currently runs the loop, and references to the Lua
 * dispatchers that C callbacks call: the request dispatcher, the call
 * completion dispatcher and the timer dispatcher. Yields happen in Lua
 * only: C callbacks call those dispatchers with lua_pcall, and they resume
 * coroutines from Lua. */
#ifndef MOONRPC_LMOONRPC_H
#define MOONRPC_LMOONRPC_H

#include <lua.h>
#include <lauxlib.h>
#include <signal.h>
#include <uv.h>
#include "moonrpc.h"

#define LMRPC_CTX_KEY "moonrpc.ctx"

typedef struct lmrpc_ctx_s {
  uv_loop_t *loop;       /* the loop every object of this state uses */
  uv_loop_t own;         /* storage when we created the loop ourselves */
  int owns_loop;
  lua_State *L;          /* the state running the loop: callbacks use it */
  lua_State *main;
  int depth;             /* >0 inside a callback from the loop */
  int closing;           /* lua_close is finalizing: call no Lua */
  int ref_request;       /* Lua: dispatch(handler, req, args) */
  int ref_complete;      /* Lua: complete(id, code, msg, value, meta) */
  int ref_timer;         /* Lua: fire(id) */
  int ref_push;          /* Lua: push(client_id, service, method, value, meta) */
  int ref_event;         /* Lua: event(id, ...) for repeating callbacks (watches) */
  mrpc_buf_t enc;        /* reused encode buffer */
  struct lmrpc_pcall_s *free_calls;
} lmrpc_ctx_t;

/* Tells the binding to use `loop` (owned by the host) for state L. Must be
 * called before require "moonrpc" creates anything. 0, or MRPC_EBUSY when the
 * state already has a loop. */
int lmrpc_set_loop(lua_State *L, uv_loop_t *loop);

/* Returns the context of L, creating it (and a loop) on first use. */
lmrpc_ctx_t *lmrpc_ctx(lua_State *L);

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

/* Collects string pairs of the table at idx into a malloc'ed array; the
 * strings stay owned by Lua (keep the table on the stack while in use).
 * Returns the count, or -1 when a key or value is not a string/number. */
int lmrpc_meta_from_table(lua_State *L, int idx, mrpc_meta_t **out);

/* Pushes the failure triple nil, code name, message for `err` (a
 * negative MRPC_E* or libuv code); returns 3 for a lua_CFunction. */
int lmrpc_push_fail(lua_State *L, int err);

/* Creates metatable `name` with `methods` behind __index and the given
 * __gc, __close and __tostring (each may be NULL). Leaves nothing on the
 * stack. */
void lmrpc_new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                     lua_CFunction gc, lua_CFunction close, lua_CFunction tostring);

/* Binding parts, each adding its functions to the module table on top. */
void lmrpc_server_open(lua_State *L);
void lmrpc_client_open(lua_State *L);
void lmrpc_selector_open(lua_State *L);
void lmrpc_registry_open_lib(lua_State *L);
void lmrpc_signal_open(lua_State *L);

/* Nonzero while run() is inside uv_run (read by the REPL's SIGINT guard,
 * lsignal.c). */
extern volatile sig_atomic_t lmrpc_in_run;
void lmrpc_edit_open(lua_State *L);

#endif
