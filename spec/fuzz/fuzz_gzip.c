/* fuzz_gzip: gzip with its cap (mrpc_gzip_decompress, codec/gzip.c).
 *
 * Input: byte 0 picks max_out (0..254 bytes, or 16 MiB for 255), the rest
 * is the gzip member. Properties: no crash, leak or UB; the output never
 * passes max_out; the cap is exact: what inflates to L bytes inflates again
 * under a cap of L, and is refused with MRPC_EBOMB under L - 1; what
 * inflated re-compresses (mrpc_gzip_compress) and inflates back equal. */
#include "fuzz_common.h"
#include "moonrpc/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mrpc_buf_t out = {0}, again = {0}, z = {0};
  size_t cap;
  char *in;
  int rc;
  if (size < 1) return 0;
  cap = data[0] == 255 ? 16u * 1024 * 1024 : data[0];
  in = fuzz_dup(data + 1, size - 1);
  rc = mrpc_gzip_decompress(&out, in, size - 1, cap);
  FUZZ_CHECK(rc == 0 || rc == MRPC_EBOMB || rc == MRPC_EGZIP);
  FUZZ_CHECK(out.len <= cap);
  if (rc == 0) {
    size_t len = out.len;
    FUZZ_CHECK(mrpc_gzip_decompress(&again, in, size - 1, len) == 0);
    FUZZ_CHECK(again.len == len && (len == 0 || memcmp(again.data, out.data, len) == 0));
    if (len > 0) {
      again.len = 0;
      FUZZ_CHECK(mrpc_gzip_decompress(&again, in, size - 1, len - 1) == MRPC_EBOMB);
    }
    FUZZ_CHECK(mrpc_gzip_compress(&z, out.data, len) == 0);
    again.len = 0;
    FUZZ_CHECK(mrpc_gzip_decompress(&again, z.data, z.len, len) == 0);
    FUZZ_CHECK(again.len == len && (len == 0 || memcmp(again.data, out.data, len) == 0));
  }
  free(in);
  mrpc_buf_free(&out);
  mrpc_buf_free(&again);
  mrpc_buf_free(&z);
  return 0;
}
