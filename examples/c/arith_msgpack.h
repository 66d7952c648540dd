/* arith_msgpack.h: a guard the two Arith examples share before handing
 * untrusted bytes to msgpack-c. Included by arith_server.c and
 * arith_client.c only; a real program would keep it in one .c file. */
#ifndef ARITH_MSGPACK_H
#define ARITH_MSGPACK_H

#include <stddef.h>

/* Big-endian unsigned integer of n (1, 2 or 4) bytes. */
static inline size_t get_be(const unsigned char *p, int n) {
  size_t v = 0;
  while (n--) v = (v << 8) | *p++;
  return v;
}

/* msgpack-c allocates room for as many elements as an array or map header
 * announces before it reads them, so the five bytes `df 7f ff ff ff` would
 * ask for tens of gigabytes. This walk over the encoding refuses a payload
 * whose containers announce more elements than there are bytes left (each
 * element takes at least one byte), and anything truncated or invalid.
 * Returns 0 when msgpack-c may safely be handed `p`. */
static inline int msgpack_bounded(const unsigned char *p, size_t len) {
  size_t i = 0, items = 1; /* values still to read */
  while (items > 0) {
    size_t skip = 0, add = 0;
    unsigned b;
    if (i >= len) return -1;
    b = p[i++];
    items--;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      /* fixint, nil, bool: the byte is the whole value */
    } else if (b <= 0x8f) {
      add = 2 * (size_t)(b & 0x0f);
    } else if (b <= 0x9f) {
      add = b & 0x0f;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
    } else {
      /* Per type byte from 0xc4: width of the length field (0 none), and
       * the fixed size that follows it (ext types add their type byte). */
      static const unsigned char lenw[] = {1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 4,
                                           2, 4, 2, 4};
      static const unsigned char fixed[] = {0, 0, 0, 1, 1, 1, 4, 8, 1, 2, 4, 8,
                                            1, 2, 4, 8, 2, 3, 5, 9, 17, 0, 0, 0,
                                            0, 0, 0, 0};
      size_t n;
      if (b < 0xc4) return -1; /* 0xc1 is never used */
      n = lenw[b - 0xc4];
      if (n > len - i) return -1;
      n = n ? get_be(p + i, (int)n) : 0;
      i += lenw[b - 0xc4];
      if (b >= 0xdc) add = b >= 0xde ? 2 * n : n; /* array/map 16/32 */
      else skip = n + fixed[b - 0xc4];
    }
    if (skip > len - i) return -1;
    i += skip;
    items += add;
    if (items > len - i) return -1;
  }
  return 0;
}

#endif
