/* lprocess.c: child processes on the loop ("moonrpc.process"), for the
 * supervisor that runs a service in several worker processes
 * (lua/moonrpc/workers.lua).
 *
 * spawn(file, args, env, id) starts `file` with uv_spawn: stdin is
 * /dev/null, stderr is inherited, stdout comes back through a pipe. What the
 * child writes on stdout and its exit are told to the Lua event dispatcher
 * from the loop: (id, "stdout", chunk), (id, "stdout", nil) at end of file,
 * and (id, "exit", status, signal) once. The process handle and the pipe
 * keep the loop alive while the child runs, as a supervisor wants.
 *
 * The lproc_t is malloc'ed by spawn and freed by the close callback of the
 * last of its two handles; close() or the userdata's __gc closes them (the
 * child itself keeps running: kill() is the way to stop it). This file
 * calls lbase.h, libuv and libc only. */
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>
#include "lbase.h"

#define PROC_MT "moonrpc.process"

typedef struct lproc_s {
  uv_process_t proc;
  uv_pipe_t out;
  lmrpc_ctx_t *ctx;   /* borrowed: the state's context */
  lua_Integer id;
  int handles;        /* handles not yet closed; at 0 the struct is freed */
  int exited;         /* the exit event was sent */
  int closing;        /* close() or __gc ran: no more events */
  char buf[16384];    /* the pipe's read buffer */
} lproc_t;

static const char *const sig_names[] = {"SIGTERM", "SIGINT", "SIGKILL", "SIGHUP",
                                        "SIGQUIT", "SIGUSR1", "SIGUSR2", NULL};
static const int sig_numbers[] = {SIGTERM, SIGINT, SIGKILL, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

static void handle_closed(uv_handle_t *h) {
  lproc_t *p = h->data;
  if (--p->handles == 0) free(p);
}

/* Sends (id, what, ...) to the event dispatcher: `nargs` values are pushed by
 * the caller's `push`, unless the process was closed or Lua is finalizing. */
static lua_State *begin_event(lproc_t *p, const char *what) {
  lua_State *L;
  if (p->closing || p->ctx->closing || p->ctx->ref_event == LUA_NOREF) return NULL;
  L = lmrpc_begin(p->ctx, p->ctx->ref_event);
  lua_pushinteger(L, p->id);
  lua_pushstring(L, what);
  return L;
}

static void on_exit_cb(uv_process_t *h, int64_t status, int term_signal) {
  lproc_t *p = h->data;
  lua_State *L;
  int i;
  p->exited = 1;
  if (!(L = begin_event(p, "exit"))) return;
  lua_pushinteger(L, (lua_Integer)status);
  if (term_signal == 0) lua_pushnil(L);
  else {
    for (i = 0; sig_names[i] && sig_numbers[i] != term_signal; i++) {}
    if (sig_names[i]) lua_pushstring(L, sig_names[i]);
    else lua_pushinteger(L, term_signal);
  }
  lmrpc_callback(p->ctx, L, 4);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  lproc_t *p = h->data;
  (void)suggested;
  *buf = uv_buf_init(p->buf, sizeof p->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  lproc_t *p = s->data;
  lua_State *L;
  if (n == 0) return;
  if (n < 0) uv_read_stop(s);
  if (!(L = begin_event(p, "stdout"))) return;
  if (n > 0) lua_pushlstring(L, buf->base, (size_t)n);
  else lua_pushnil(L); /* EOF or a read error: nothing more comes */
  lmrpc_callback(p->ctx, L, 3);
}

static lproc_t **check_proc(lua_State *L) { return luaL_checkudata(L, 1, PROC_MT); }

/* spawn(file, {args...}, {"K=V"...} or nil, id) -> process | nil, code, msg.
 * The environment is this process's with the given pairs added. */
static int lmrpc_spawn(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  const char *file = luaL_checkstring(L, 1);
  lua_Integer id = luaL_checkinteger(L, 4);
  lua_Integer i, nargs, nenv = 0, nbase = 0;
  uv_process_options_t o;
  uv_stdio_container_t io[3];
  const char **argv, **envp;
  extern char **environ;
  lproc_t **ud, *p;
  int r;
  luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    nenv = luaL_len(L, 3);
  }
  nargs = luaL_len(L, 2);
  while (environ[nbase]) nbase++;
  /* Scratch arrays as userdata, so a raise below frees them too. */
  argv = lua_newuserdatauv(L, (size_t)(nargs + 2) * sizeof *argv, 0);
  envp = lua_newuserdatauv(L, (size_t)(nbase + nenv + 1) * sizeof *envp, 0);
  argv[0] = file;
  for (i = 1; i <= nargs; i++) {
    lua_geti(L, 2, i);
    argv[i] = luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the table keeps the string alive */
  }
  argv[nargs + 1] = NULL;
  for (i = 0; i < nbase; i++) envp[i] = environ[i];
  for (i = 1; i <= nenv; i++) {
    lua_geti(L, 3, i);
    envp[nbase + i - 1] = luaL_checkstring(L, -1);
    lua_pop(L, 1);
  }
  envp[nbase + nenv] = NULL;

  ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL; /* closed until the child runs */
  luaL_setmetatable(L, PROC_MT);
  if (!(p = calloc(1, sizeof *p))) return lmrpc_push_fail(L, MRPC_ENOMEM);
  p->ctx = ctx;
  p->id = id;
  uv_pipe_init(ctx->loop, &p->out, 0);
  p->out.data = p->proc.data = p;
  p->handles = 1;
  memset(&o, 0, sizeof o);
  memset(io, 0, sizeof io);
  io[0].flags = UV_IGNORE;
  io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  io[1].data.stream = (uv_stream_t *)&p->out;
  io[2].flags = UV_INHERIT_FD;
  io[2].data.fd = 2;
  o.file = file;
  o.args = (char **)argv;
  o.env = (char **)envp;
  o.exit_cb = on_exit_cb;
  o.stdio = io;
  o.stdio_count = 3;
  fflush(NULL);
  if ((r = uv_spawn(ctx->loop, &p->proc, &o)) < 0) {
    /* A failed uv_spawn leaves an initialised handle to close. */
    p->handles = 2;
    p->closing = 1;
    uv_close((uv_handle_t *)&p->proc, handle_closed);
    uv_close((uv_handle_t *)&p->out, handle_closed);
    return lmrpc_push_fail(L, r);
  }
  p->handles = 2;
  uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
  *ud = p;
  return 1;
}

static void proc_close(lproc_t **ud) {
  lproc_t *p = *ud;
  if (!p) return;
  *ud = NULL;
  p->closing = 1;
  uv_close((uv_handle_t *)&p->proc, handle_closed);
  uv_close((uv_handle_t *)&p->out, handle_closed);
}

/* process:pid() -> integer, or nil once closed. */
static int lmrpc_proc_pid(lua_State *L) {
  lproc_t **ud = check_proc(L);
  if (!*ud) return 0;
  lua_pushinteger(L, (*ud)->proc.pid);
  return 1;
}

/* process:kill([signal]) -> true | nil, code, message. `signal` is one of
 * "SIGTERM" (default), "SIGINT", "SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1",
 * "SIGUSR2". A child that already exited gives ESRCH. */
static int lmrpc_proc_kill(lua_State *L) {
  lproc_t **ud = check_proc(L);
  int sig = sig_numbers[luaL_checkoption(L, 2, "SIGTERM", sig_names)], r;
  if (!*ud) return luaL_error(L, "moonrpc: process is closed");
  if ((*ud)->exited) return lmrpc_push_fail(L, UV_ESRCH);
  if ((r = uv_process_kill(&(*ud)->proc, sig)) < 0) return lmrpc_push_fail(L, r);
  lua_pushboolean(L, 1);
  return 1;
}

/* process:close(): no more events; the child keeps running. */
static int lmrpc_proc_close(lua_State *L) {
  proc_close(check_proc(L));
  return 0;
}

static int lmrpc_proc_tostring(lua_State *L) {
  lproc_t **ud = check_proc(L);
  if (*ud) lua_pushfstring(L, "moonrpc.process (pid %d)", (int)(*ud)->proc.pid);
  else lua_pushliteral(L, "moonrpc.process (closed)");
  return 1;
}

/* getppid() -> integer: the parent's pid, which a worker watches to notice
 * that its supervisor has gone. */
static int lmrpc_getppid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getppid());
  return 1;
}

/* getpid() -> integer. */
static int lmrpc_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}

/* cpu_count() -> integer: the CPUs this process may run on (at least 1),
 * for `--workers auto`. */
static int lmrpc_cpu_count(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, n > 0 ? n : 1);
  return 1;
}

static const luaL_Reg proc_methods[] = {
  {"pid", lmrpc_proc_pid},
  {"kill", lmrpc_proc_kill},
  {"close", lmrpc_proc_close},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"spawn", lmrpc_spawn},
  {"getppid", lmrpc_getppid},
  {"getpid", lmrpc_getpid},
  {"cpu_count", lmrpc_cpu_count},
  {NULL, NULL}
};

void lmrpc_process_open(lua_State *L) {
  lmrpc_new_class(L, PROC_MT, proc_methods, lmrpc_proc_close, lmrpc_proc_close,
                  lmrpc_proc_tostring);
  luaL_setfuncs(L, funcs, 0);
}
