/* lloop.h: the loop as Lua sees it (lloop.c): running it, its clock, the
 * host's loop handed in from Lua, the dispatchers the C callbacks call,
 * and one-shot timers. lloop.c may call only the shared helpers of lbase.h
 * and libuv. Included by the entry (lmoonrpc.c), which calls
 * lmrpc_loop_open, and by lsignal.c, which reads lmrpc_in_run. */
#ifndef MOONRPC_LLOOP_H
#define MOONRPC_LLOOP_H

#include <signal.h>
#include <lua.h>

/* Adds to the module table on top of the stack:
 *   run([mode]), stop(), now(), hrtime(), in_callback(), loop_pointer(),
 *   use_loop(ptr), luv_loop(uv), set_dispatchers(request, complete, timer, push, event),
 *   timer_start(ms, id [, weak]), timer_stop(handle). */
void lmrpc_loop_open(lua_State *L);

/* Nonzero while run() is inside uv_run (in any state of the process). Only
 * run() writes it; the REPL's SIGINT guard (lsignal.c) reads it from its
 * signal handler. */
extern volatile sig_atomic_t lmrpc_in_run;

#endif
