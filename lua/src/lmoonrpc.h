/* lmoonrpc.h: the entry of the moonrpc Lua binding (lmoonrpc.c), for the
 * entry itself and for a host that embeds Lua.
 *
 * A host that runs its own libuv loop hands it in with lmrpc_set_loop
 * (declared, with the per-state context, in lbase.h, included here) before
 * require "moonrpc" creates anything; luaopen_moonrpc_core is what
 * require "moonrpc.core" calls.
 *
 * The parts below each add their functions and classes to the module table
 * on top of the stack. They are defined in their own files and called only
 * by luaopen_moonrpc_core; the loop (lloop.h) and the codecs (lcodec.h)
 * declare theirs in their own headers. lmoonrpc.c may call every part's
 * open function and nothing else of the binding; nothing calls into it:
 * the parts reach what they share through lbase.h, never through this
 * header. */
#ifndef MOONRPC_LMOONRPC_H
#define MOONRPC_LMOONRPC_H

#include <lua.h>
#include "lbase.h"

int luaopen_moonrpc_core(lua_State *L);

void lmrpc_server_open(lua_State *L);      /* lserver.c */
void lmrpc_client_open(lua_State *L);      /* lclient.c */
void lmrpc_selector_open(lua_State *L);    /* lselector.c */
void lmrpc_registry_open_lib(lua_State *L); /* lregistry.c */
void lmrpc_signal_open(lua_State *L);      /* lsignal.c */
void lmrpc_edit_open(lua_State *L);        /* ledit.c */
void lmrpc_process_open(lua_State *L);     /* lprocess.c */

#endif
