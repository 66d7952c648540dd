/* addr.c: rpcx addresses ("tcp@host:port", "unix@/path") and their parsing
 * into socket addresses. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "transport/transport.h"

int mrpc_addr_split(const char *address, const char **network, char *buf,
                    size_t len) {
  const char *at, *rest = address;
  size_t n;
  if (!address || !*address) return MRPC_EADDR;
  *network = "tcp";
  at = strchr(address, '@');
  if (at) {
    size_t nl = (size_t)(at - address);
    if (nl == 3 && memcmp(address, "tcp", 3) == 0) *network = "tcp";
    else if (nl == 4 && (memcmp(address, "tcp4", 4) == 0 ||
                         memcmp(address, "tcp6", 4) == 0)) *network = "tcp";
    else if (nl == 4 && memcmp(address, "unix", 4) == 0) *network = "unix";
    else return MRPC_EADDR;
    rest = at + 1;
  }
  n = strlen(rest);
  if (n == 0 || n >= len) return MRPC_EADDR;
  memcpy(buf, rest, n + 1);
  return 0;
}

/* Splits "host:port" / "[v6]:port" / ":port"; host may come back empty. */
int mrpc__hostport(const char *hp, char *host, size_t hlen, int *port) {
  const char *colon, *h = hp, *hend;
  char *end;
  long p;
  if (hp[0] == '[') {
    hend = strchr(hp, ']');
    if (!hend || hend[1] != ':') return MRPC_EADDR;
    h = hp + 1;
    colon = hend + 1;
  } else {
    colon = strrchr(hp, ':');
    if (!colon) return MRPC_EADDR;
    hend = colon;
  }
  if ((size_t)(hend - h) >= hlen) return MRPC_EADDR;
  memcpy(host, h, (size_t)(hend - h));
  host[hend - h] = 0;
  p = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || p < 0 || p > 65535) return MRPC_EADDR;
  *port = (int)p;
  return 0;
}

/* Parses a literal IP (or "localhost", or empty for any) and port. Returns
 * 0, or 1 when `host` is a name that needs resolving, or MRPC_EADDR. */
int mrpc__sockaddr(const char *hp, struct sockaddr_storage *ss, char *host,
                   size_t hlen, int *port) {
  int r = mrpc__hostport(hp, host, hlen, port);
  if (r < 0) return r;
  memset(ss, 0, sizeof *ss);
  if (host[0] == 0)
    return uv_ip4_addr("0.0.0.0", *port, (struct sockaddr_in *)ss) ? MRPC_EADDR : 0;
  if (strcmp(host, "localhost") == 0)
    return uv_ip4_addr("127.0.0.1", *port, (struct sockaddr_in *)ss) ? MRPC_EADDR : 0;
  if (uv_ip4_addr(host, *port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, *port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return 1;
}

int mrpc__sockname(const struct sockaddr_storage *ss, char *buf, size_t len) {
  char ip[64];
  int n;
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof ip);
    n = snprintf(buf, len, "tcp@[%s]:%d", ip, ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof ip);
    n = snprintf(buf, len, "tcp@%s:%d", ip, ntohs(a->sin_port));
  }
  return (n < 0 || (size_t)n >= len) ? UV_ENOBUFS : 0;
}
