/* error.c: names and descriptions of error codes.
 *
 * moonrpc's own codes (MRPC_ERRNO_MAP in common.h) are named here; libuv's
 * codes (UV_ERRNO_MAP in uv.h) are handed to uv_err_name/uv_strerror. Our
 * codes are never passed to libuv. Any other value (an unassigned code, or
 * 0) gets a fixed string here as well, because libuv answers unknown codes
 * with a malloc'ed string that nobody frees. */
#include <uv.h>

#include "moonrpc/common.h"

/* True when `err` is one of libuv's named error codes. */
static int is_uv_code(int err) {
  switch (err) {
#define XX(code, _) case UV_##code:
    UV_ERRNO_MAP(XX)
#undef XX
    return 1;
  default:
    return 0;
  }
}

const char *mrpc_err_name(int err) {
  switch (err) {
#define XX(name, code, msg) case (code): return #name;
    MRPC_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "OK";
  default:
    break;
  }
  return is_uv_code(err) ? uv_err_name(err) : "EUNKNOWN";
}

const char *mrpc_strerror(int err) {
  switch (err) {
#define XX(name, code, msg) case (code): return msg;
    MRPC_ERRNO_MAP(XX)
#undef XX
  case 0:
    return "success";
  default:
    break;
  }
  return is_uv_code(err) ? uv_strerror(err) : "unknown error";
}
