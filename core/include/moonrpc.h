/* moonrpc.h: the public API of libmoonrpc, the C core of moonrpc.
 *
 * libmoonrpc speaks the rpcx wire protocol (version 0) on a libuv loop that
 * its host owns: a pure frame codec (moonrpc/frame.h), a server
 * (moonrpc/server.h), a client connection (moonrpc/client.h) and rpcx's
 * selectors (moonrpc/selector.h) and the service registry
 * (moonrpc/registry.h), and the gateway that forwards a server's requests
 * to registered instances (moonrpc/gateway.h). Errors are
 * 0 or a negative code (moonrpc/common.h). Nothing here includes Lua. */
#ifndef MOONRPC_H
#define MOONRPC_H

#include "moonrpc/common.h"
#include "moonrpc/frame.h"
#include "moonrpc/server.h"
#include "moonrpc/client.h"
#include "moonrpc/selector.h"
#include "moonrpc/registry.h"
#include "moonrpc/gateway.h"

#define MOONRPC_VERSION "0.1.0"

#endif
