/* fuzz_lua_codec: the Lua binding's msgpack and JSON codecs
 * (lua/src/lmsgpack.c, ljson.c over lvalue.c, dispatched by lcodec.c),
 * through a real Lua state: lmrpc_decode and lmrpc_encode, the C entry
 * points under moonrpc.core's decode/encode.
 *
 * Input: byte 0 picks the codec (bit 0: msgpack, else JSON) and a small
 * max_depth (1..16), the rest is the payload. Each input is decoded at
 * that depth and at the default (64). Properties: no crash, leak or UB, no
 * Lua error escaping; a failure is EDECODE or EDEPTH and leaves the stack
 * as it was; what decodes at depth d nests at most d tables deep and
 * decodes at the default too, equal; it re-encodes in the same codec at
 * depth d (JSON may refuse NaN and infinities, msgpack a table used as a
 * map key) and those bytes decode at depth d to a value deeply equal to
 * the first. */
#include <lauxlib.h>
#include <lualib.h>
#include "fuzz_common.h"
#include "lcodec.h"

/* Helpers in Lua: nesting depth, deep equality (NaN equal to itself, an
 * integer equal to the same float), and whether JSON or msgpack may refuse
 * to write the value back. */
static const char helpers[] =
  "local function depth(v)\n"
  "  if type(v) ~= 'table' then return 0 end\n"
  "  local d = 0\n"
  "  for k, x in next, v do\n"
  "    local a, b = depth(k), depth(x)\n"
  "    if a > d then d = a end\n"
  "    if b > d then d = b end\n"
  "  end\n"
  "  return d + 1\n"
  "end\n"
  "local function eq(a, b)\n"
  "  if a == b then return true end\n"
  "  if a ~= a and b ~= b then return true end\n"
  "  if type(a) ~= 'table' or type(b) ~= 'table' then return false end\n"
  "  for k, x in next, a do\n"
  "    if type(k) == 'table' then return true end -- keys by identity: not comparable\n"
  "    if not eq(x, rawget(b, k)) then return false end\n"
  "  end\n"
  "  for k in next, b do if rawget(a, k) == nil then return false end end\n"
  "  return true\n"
  "end\n"
  "local function unwritable(v, json)\n"
  "  if type(v) == 'number' then return json and (v ~= v or v == 1/0 or v == -1/0) end\n"
  "  if type(v) ~= 'table' then return false end\n"
  "  for k, x in next, v do\n"
  "    if type(k) == 'table' or (json and type(k) == 'boolean') then return true end\n"
  "    if unwritable(k, json) or unwritable(x, json) then return true end\n"
  "  end\n"
  "  return false\n"
  "end\n"
  "return depth, eq, unwritable\n";

static lua_State *L;
static int f_depth, f_eq, f_unwritable; /* registry refs */

static void init(void) {
  L = luaL_newstate();
  FUZZ_CHECK(L);
  luaL_openlibs(L);
  FUZZ_CHECK(luaL_loadstring(L, helpers) == LUA_OK && lua_pcall(L, 0, 3, 0) == LUA_OK);
  f_unwritable = luaL_ref(L, LUA_REGISTRYINDEX);
  f_eq = luaL_ref(L, LUA_REGISTRYINDEX);
  f_depth = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Calls a helper on the values at absolute indices a (and b when > 0). */
static lua_Integer call(int ref, int a, int b, int json) {
  lua_Integer r;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_pushvalue(L, a);
  if (b > 0) lua_pushvalue(L, b);
  else lua_pushboolean(L, json);
  FUZZ_CHECK(lua_pcall(L, 2, 1, 0) == LUA_OK);
  r = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : lua_tointeger(L, -1);
  lua_pop(L, 1);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mrpc_buf_t out;
  char err[256];
  int ser, rc, rc64;
  unsigned d;
  char *p;
  if (!L) init();
  if (size < 1) return 0;
  ser = data[0] & 1 ? LMRPC_SER_MSGPACK : LMRPC_SER_JSON;
  d = 1 + (data[0] >> 1) % 16;
  p = fuzz_dup(data + 1, size - 1);
  lua_settop(L, 0);

  rc = lmrpc_decode(L, ser, p, size - 1, d, err, sizeof err);
  FUZZ_CHECK(rc == 0 || rc == MRPC_EDECODE || rc == MRPC_EDEPTH);
  FUZZ_CHECK(lua_gettop(L) == (rc == 0 ? 1 : 0));
  if (rc) FUZZ_CHECK(err[0] != 0);
  rc64 = lmrpc_decode(L, ser, p, size - 1, 0, err, sizeof err);
  FUZZ_CHECK(rc64 == 0 || rc64 == MRPC_EDECODE || rc64 == MRPC_EDEPTH);
  free(p);
  if (rc == 0) {
    FUZZ_CHECK(rc64 == 0);
    FUZZ_CHECK(call(f_depth, 1, 0, 0) <= (lua_Integer)d);
    FUZZ_CHECK(call(f_eq, 1, 2, 0));
    out.len = 0;
    rc = lmrpc_encode(L, 1, ser, &out, d, err, sizeof err);
    FUZZ_CHECK(lua_gettop(L) == 2);
    if (rc != 0) {
      if (!call(f_unwritable, 1, 0, ser == LMRPC_SER_JSON))
        fprintf(stderr, "re-encode: %d %s\n", rc, err);
      FUZZ_CHECK(rc == MRPC_EENCODE && call(f_unwritable, 1, 0, ser == LMRPC_SER_JSON));
    } else {
      rc = lmrpc_decode(L, ser, out.data, out.len, d, err, sizeof err);
      if (rc) fprintf(stderr, "decode of the re-encoding: %d %s\n", rc, err);
      FUZZ_CHECK(rc == 0);
      FUZZ_CHECK(call(f_eq, 1, 3, 0));
    }
  } else if (rc == MRPC_EDECODE) {
    FUZZ_CHECK(rc64 == MRPC_EDECODE); /* the same bytes, read the same way */
  }
  lua_settop(L, 0);
  if (out.cap > 1 << 20) mrpc_buf_free(&out);
  return 0;
}
