/* ledit.c: line editing for the REPL (moonrpc.repl) over libedit's
 * readline-compatible API: a prompt read on the loop, history, completion.
 *
 * The prompt uses libedit's alternate (callback) interface so that the loop
 * keeps running while the user types: a uv_poll_t watches stdin and feeds
 * each readable byte to rl_callback_read_char(); when a line is complete
 * (or Ctrl-D on an empty line) the poll stops and the Lua event dispatcher
 * is called with (id, line) or (id) at end of input. Replies of calls
 * started with `go` can then be printed while the user is at the prompt
 * (edit_print redraws the prompt and the partial line below them).
 *
 * libedit's readline API is global to the process (one terminal, one
 * editor), so the editor's state is one static struct, owned by the first
 * Lua state that starts a prompt; another state gets an error. That is the
 * single exception to "no mutable globals", forced by the library.
 *
 * Signals: libedit's own handlers are off (rl_catch_signals = 0): SIGINT
 * reaches moonrpc.signal's watch on the loop, and the REPL decides what
 * Ctrl-C means (clear the line at the prompt, cancel a call otherwise).
 * The terminal is in libedit's raw mode only while a prompt is active. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <editline/readline.h>
#include "lbase.h"

#define EDIT_GUARD "moonrpc.edit"

static struct {
  lmrpc_ctx_t *ctx;   /* borrowed: the context of the state that owns the
                       * editor; NULL when none (reset by guard_gc) */
  uv_poll_t *poll;    /* stdin watch while a prompt is active; malloc'ed by
                       * edit_start, closed by prompt_stop and freed in
                       * its close callback (poll_closed) */
  lua_Integer id;     /* event id of the active prompt */
  int done;           /* the line handler ran for the active prompt */
  char *line;         /* its line (malloc'ed by libedit), NULL at EOF;
                       * freed by on_readable after the event, or guard_gc */
  int ref_complete;   /* registry ref to the Lua completer: fn(text, line,
                       * start, end) -> {..}; released by edit_completer
                       * when replaced; guard_gc forgets it as the state,
                       * and with it the registry, closes */
  char **cands;       /* strdup'ed candidates of the completion in
                       * progress; freed by free_cands */
  int ncands, next;
  char prompt[256];
} ed = {NULL, NULL, 0, 0, NULL, LUA_NOREF, NULL, 0, 0, ""};

static void poll_closed(uv_handle_t *h) { free(h); }

/* Stops watching stdin and leaves libedit's callback mode (the terminal
 * goes back to its normal mode). */
static void prompt_stop(void) {
  if (!ed.poll) return;
  uv_close((uv_handle_t *)ed.poll, poll_closed);
  ed.poll = NULL;
  rl_callback_handler_remove();
}

static void free_cands(void) {
  int i;
  for (i = 0; i < ed.ncands; i++) free(ed.cands[i]);
  free(ed.cands);
  ed.cands = NULL;
  ed.ncands = ed.next = 0;
}

static void on_line(char *line) {
  ed.done = 1;
  ed.line = line;
}

static void on_readable(uv_poll_t *p, int status, int events) {
  lmrpc_ctx_t *ctx = ed.ctx;
  lua_State *L;
  char *line;
  (void)events;
  if (status == 0) rl_callback_read_char();
  if (!ed.done && status == 0) return;
  line = ed.line;
  ed.line = NULL;
  prompt_stop();
  /* libedit shows the prompt again as soon as the line handler returns
   * (it expects the handler to stay installed); erase that row. */
  fputs("\r\033[K", stdout);
  fflush(stdout);
  if (ctx->closing || ctx->ref_event == LUA_NOREF) {
    free(line);
    return;
  }
  L = lmrpc_begin(ctx, ctx->ref_event);
  lua_pushinteger(L, ed.id);
  if (line) lua_pushstring(L, line);
  free(line);
  lmrpc_callback(ctx, L, line ? 2 : 1);
}

/* A guard userdata in the registry: when its state closes, the editor is
 * stopped and released (it is finalized before the context, which was
 * created first). */
static int guard_gc(lua_State *L) {
  (void)L;
  prompt_stop();
  free(ed.line);
  ed.line = NULL;
  free_cands();
  ed.ref_complete = LUA_NOREF;
  ed.ctx = NULL;
  return 0;
}

static lmrpc_ctx_t *owner(lua_State *L) {
  lmrpc_ctx_t *ctx = lmrpc_ctx(L);
  if (ed.ctx == ctx) return ctx;
  if (ed.ctx) luaL_error(L, "moonrpc: the line editor is in use by another Lua state");
  rl_readline_name = "moonrpc";
  rl_catch_signals = 0;
  rl_catch_sigwinch = 1;
  rl_initialize();
  lua_newuserdatauv(L, 1, 0);
  lua_newtable(L);
  lua_pushcfunction(L, guard_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, EDIT_GUARD);
  ed.ctx = ctx;
  return ctx;
}

/* edit_start(prompt, id): shows the prompt and reads a line on the loop;
 * the event dispatcher gets (id, line), or (id) at end of input. Returns
 * true, or nil, code, message when stdin cannot be watched. */
static int lmrpc_edit_start(lua_State *L) {
  const char *prompt = luaL_checkstring(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  lmrpc_ctx_t *ctx = owner(L);
  int r;
  if (ed.poll) return luaL_error(L, "moonrpc: a prompt is already active");
  if (!(ed.poll = malloc(sizeof *ed.poll))) return luaL_error(L, "moonrpc: out of memory");
  if ((r = uv_poll_init(ctx->loop, ed.poll, STDIN_FILENO)) < 0) {
    free(ed.poll);
    ed.poll = NULL;
    return lmrpc_push_fail(L, r);
  }
  uv_poll_start(ed.poll, UV_READABLE, on_readable);
  snprintf(ed.prompt, sizeof ed.prompt, "%s", prompt);
  ed.id = id;
  ed.done = 0;
  rl_callback_handler_install(ed.prompt, on_line);
  lua_pushboolean(L, 1);
  return 1;
}

/* edit_stop(): ends the active prompt without a line (no event). */
static int lmrpc_edit_stop(lua_State *L) {
  (void)L;
  prompt_stop();
  return 0;
}

/* edit_clear([prompt]): Ctrl-C at the prompt: the typed line is dropped
 * and a fresh prompt (`prompt`, else the same one) shown on the next row.
 * The cursor first moves to the end of the line (it may be in the middle)
 * and "^C" follows the text there: leaving callback mode writes a carriage
 * return, which would otherwise put "^C" over the prompt's first letters. */
static int lmrpc_edit_clear(lua_State *L) {
  const char *prompt = luaL_optstring(L, 1, NULL);
  if (!ed.poll) return 0;
  if (rl_line_buffer && rl_point >= 0 && rl_point < rl_end && (size_t)rl_end <= strlen(rl_line_buffer))
    fwrite(rl_line_buffer + rl_point, 1, (size_t)(rl_end - rl_point), stdout);
  fputs("^C\r\n", stdout);
  fflush(stdout);
  rl_callback_handler_remove(); /* back to cooked mode; the line is dropped... */
  if (prompt) snprintf(ed.prompt, sizeof ed.prompt, "%s", prompt);
  rl_callback_handler_install(ed.prompt, on_line); /* ...by the fresh one */
  return 0;
}

/* edit_print(text): writes text (ending in a newline) above the prompt when
 * one is active, and redraws the prompt and the partial line below it. */
static int lmrpc_edit_print(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  if (ed.poll) fputs("\r\033[K", stdout);
  fwrite(s, 1, n, stdout);
  if (n == 0 || s[n - 1] != '\n') fputc('\n', stdout);
  fflush(stdout);
  if (ed.poll) rl_forced_update_display();
  return 0;
}

static int lmrpc_edit_history_add(lua_State *L) {
  add_history(luaL_checkstring(L, 1));
  return 0;
}

/* edit_history_load(file [, max]) and edit_history_save(file): libedit's
 * history file. Return true, or nil and a message. */
static int lmrpc_edit_history_load(lua_State *L) {
  const char *file = luaL_checkstring(L, 1);
  owner(L);
  stifle_history((int)luaL_optinteger(L, 2, 1000));
  if (read_history(file) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot read history %s", file);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int lmrpc_edit_history_save(lua_State *L) {
  const char *file = luaL_checkstring(L, 1);
  if (write_history(file) != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write history %s", file);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static char *next_cand(const char *text, int state) {
  (void)text;
  if (state == 0) ed.next = 0;
  if (ed.next >= ed.ncands) return NULL;
  return strdup(ed.cands[ed.next++]);
}

/* libedit's completion hook: asks the Lua completer for the candidates of
 * the word before the cursor (a protected call: the completer's failure
 * means no candidates). */
static char **complete(const char *text, int start, int end) {
  lmrpc_ctx_t *ctx = ed.ctx;
  lua_State *L;
  char **matches = NULL;
  int top, i, n;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  rl_completion_append_character = '\0';
  if (!ctx || ctx->closing || ed.ref_complete == LUA_NOREF) return NULL;
  L = ctx->L;
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ed.ref_complete);
  lua_pushstring(L, text);
  lua_pushstring(L, rl_line_buffer ? rl_line_buffer : "");
  lua_pushinteger(L, start);
  lua_pushinteger(L, end);
  ctx->depth++;
  if (lua_pcall(L, 4, 1, 0) == LUA_OK && lua_istable(L, -1)) {
    n = (int)luaL_len(L, -1);
    free_cands();
    if (n > 0 && (ed.cands = calloc((size_t)n, sizeof *ed.cands))) {
      for (i = 1; i <= n; i++) {
        const char *c;
        lua_geti(L, -1, i);
        c = lua_tostring(L, -1);
        if (c && (ed.cands[ed.ncands] = strdup(c))) ed.ncands++;
        lua_pop(L, 1);
      }
      if (ed.ncands > 0) matches = rl_completion_matches(text, next_cand);
    }
    free_cands();
  }
  ctx->depth--;
  lua_settop(L, top);
  return matches;
}

/* edit_completer(fn): fn(text, line, start, end) returns a list of
 * candidates for the word `text`, which ends at byte `end` of `line`. */
static int lmrpc_edit_completer(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  owner(L);
  luaL_unref(L, LUA_REGISTRYINDEX, ed.ref_complete);
  lua_pushvalue(L, 1);
  ed.ref_complete = luaL_ref(L, LUA_REGISTRYINDEX);
  rl_attempted_completion_function = complete;
  return 0;
}

static int lmrpc_edit_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
  return 1;
}

static const luaL_Reg funcs[] = {
  {"edit_start", lmrpc_edit_start},
  {"edit_stop", lmrpc_edit_stop},
  {"edit_clear", lmrpc_edit_clear},
  {"edit_print", lmrpc_edit_print},
  {"edit_history_add", lmrpc_edit_history_add},
  {"edit_history_load", lmrpc_edit_history_load},
  {"edit_history_save", lmrpc_edit_history_save},
  {"edit_completer", lmrpc_edit_completer},
  {"edit_isatty", lmrpc_edit_isatty},
  {NULL, NULL}
};

void lmrpc_edit_open(lua_State *L) {
  luaL_setfuncs(L, funcs, 0);
}
